// What the sync service reports (`SyncService.snapshot()`: HTTP API, dashboard, metrics,
// datapoints). Separate so the readers of a snapshot need not import the service itself.
import type { DeadLetterSummary } from './dead-letter.js';
import type { Link, LinkState } from './link.js';

export interface LinkSnapshot {
  name: string;
  role: Link['role'];
  state: LinkState;
  since: number;
  lastError: string | undefined;
  batches: number;
  records: number;
  bytes: number;
  errors: number;
}

export interface SyncSnapshot {
  enabled: boolean;
  /** Highest outbox sequence handed out / acknowledged upstream. */
  lastSeq: number;
  acked: number;
  backlogRecords: number;
  /** Estimate: backlog × payload bytes per record seen lately. */
  backlogBytes: number;
  /** Age of the oldest unsent record (its measurement time), seconds; 0 when none. */
  oldestUnsentAgeSeconds: number;
  /** Records per second acknowledged over the last ~10 s. */
  drainRate: number;
  /** Records per second added to the outbox over the last ~10 s. */
  ingestRate: number;
  /** Seconds until caught up at the current rates; null when not converging. */
  catchUpSeconds: number | null;
  activeLink: string | undefined;
  mode: 'idle' | 'primary' | 'fallback' | 'offline';
  links: LinkSnapshot[];
  downlink: { ok: number; refused: number };
  /** Records the receiver refused for good, set aside (`<dataDir>/sync/dead-letter.jsonl`): count and the newest. */
  deadLetters: DeadLetterSummary;
}
