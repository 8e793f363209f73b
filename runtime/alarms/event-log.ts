import type { Clock } from '../../core/clock.js';
import type { EventSeverity, EventSink, GatewayEventInput } from '../../core/events.js';
import { RefusalLimiter } from '../audit/bounds.js';
import type { Logger } from '../log.js';
import { JsonlJournal } from '../jsonl-journal.js';

/** One line of the event log, as the API returns it. */
export interface GatewayEvent {
  /** Increasing across restarts and rotations (the API pages with `before`). */
  id: number;
  t: number;
  source: string;
  kind: string;
  severity: EventSeverity;
  message: string;
  data?: Record<string, unknown>;
  /** Events of the same source and kind left out just before this one (rate limit). */
  suppressedBefore?: number;
}

export interface EventLogOptions {
  /** `<dataDir>/alarms` */
  dir: string;
  log: Logger;
  clock: Clock;
  /** A file is rotated before it grows past this (default 1 MiB). */
  maxFileBytes?: number;
  /** Files kept, the current one included (default 3). */
  keepFiles?: number;
  /** Newest events kept in memory for the API (default 2,000). */
  tailSize?: number;
  /** Events recorded per (source, kind) a minute, at most (default 10); the rest are counted. */
  perMinute?: number;
}

const SEVERITIES: readonly EventSeverity[] = ['info', 'warning', 'alarm'];
/** Event lines waiting for the disk, at most: a stalled disk must not grow memory for ever. */
const MAX_PENDING = 5_000;
const MAX_DATA_BYTES = 2 * 1024;

/** How serious, as a number: the API's `severity` filter means "this or worse". */
export function severityRank(s: EventSeverity): number {
  return SEVERITIES.indexOf(s);
}

export function isSeverity(s: unknown): s is EventSeverity {
  return typeof s === 'string' && (SEVERITIES as readonly string[]).includes(s);
}

function cut(s: unknown, max: number): string {
  const text = typeof s === 'string' ? s : String(s);
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/**
 * The gateway's event log (issue 24): what happened on site, for technicians — alarms raised,
 * cleared and acknowledged, adapters failing and recovering, links down and up, storage
 * read-only, and what adapters record through the `('events', 'gateway')` service.
 *
 * Append-only JSON lines in `<dir>/events.jsonl`, rotated to `events.1.jsonl` … before a file
 * passes `maxFileBytes` (at most `keepFiles × maxFileBytes` on disk). Written behind the caller
 * in batches like the audit log (runtime/audit/audit-log.ts): `record` never throws and never
 * waits. Each (source, kind) — or the key a caller gives, such as one alarm — is recorded at
 * most `perMinute` times a minute; the next one recorded says how many were left out.
 */
export class EventLog implements EventSink {
  private readonly limiter: RefusalLimiter;
  private readonly journal: JsonlJournal<GatewayEvent>;
  /** Events left out by the rate limit. */
  suppressed = 0;

  constructor(private readonly o: EventLogOptions) {
    this.limiter = new RefusalLimiter(o.perMinute ?? 10);
    this.journal = new JsonlJournal<GatewayEvent>({
      dir: o.dir,
      base: 'events',
      what: 'events',
      name: 'event log',
      log: o.log,
      maxFileBytes: o.maxFileBytes ?? 1024 * 1024,
      keepFiles: Math.max(1, o.keepFiles ?? 3),
      tailSize: o.tailSize ?? 2_000,
      maxPending: MAX_PENDING,
      parse: (value) => {
        const event = value as GatewayEvent;
        if (typeof event?.id !== 'number' || typeof event.t !== 'number') throw new TypeError('no id or time');
        return event;
      },
    });
  }

  /** Events that never reached the disk (write failures, a full queue, records after close). */
  get dropped(): number {
    return this.journal.dropped;
  }

  /** Loads the newest events from the files and opens the current one for appending. */
  open(): Promise<void> {
    return this.journal.open();
  }

  /** The EventSink of core/events.ts: rate-limited per (source, kind). */
  record(input: GatewayEventInput): void {
    this.add(input, `${input.source}|${input.kind}`);
  }

  /** Records with its own rate-limit key (one alarm's raise and clear, not every alarm's). Returns the event, or undefined when left out. */
  add(input: GatewayEventInput, limitKey: string): GatewayEvent | undefined {
    try {
      const now = this.o.clock.now();
      const admitted = this.limiter.admit(limitKey, now);
      if (admitted === undefined) {
        this.suppressed++;
        return undefined;
      }
      const event: GatewayEvent = {
        id: this.journal.takeId(),
        t: typeof input.t === 'number' && Number.isFinite(input.t) ? input.t : now,
        source: cut(input.source, 64),
        kind: cut(input.kind, 64),
        severity: isSeverity(input.severity) ? input.severity : 'info',
        message: cut(input.message, 500),
        ...(admitted > 0 ? { suppressedBefore: admitted } : {}),
      };
      if (input.data !== undefined) {
        const text = JSON.stringify(input.data);
        event.data = text.length > MAX_DATA_BYTES ? { truncated: true } : (JSON.parse(text) as Record<string, unknown>);
      }
      this.journal.append(event, JSON.stringify(event));
      return event;
    } catch (err) {
      // A recording must never fail what it records (data that does not serialise, say).
      this.journal.lost(1, (err as Error).message);
      return undefined;
    }
  }

  /** Resolves once every event recorded so far is written (or counted as lost). */
  flush(): Promise<void> {
    return this.journal.flush();
  }

  /** Writes what is pending and closes the file; later events are kept in memory only. */
  close(): Promise<void> {
    return this.journal.close();
  }

  /**
   * Newest first, from the in-memory tail: at most `limit` events older than `before` (an id),
   * of `severity` or worse, from one `source`.
   */
  query(q: { limit: number; before?: number; severity?: EventSeverity; source?: string }): { items: GatewayEvent[]; more: boolean } {
    const items: GatewayEvent[] = [];
    const min = q.severity ? severityRank(q.severity) : 0;
    for (const e of this.journal.newest()) {
      if (q.before !== undefined && e.id >= q.before) continue;
      if (severityRank(e.severity) < min) continue;
      if (q.source !== undefined && e.source !== q.source) continue;
      if (items.length === q.limit) return { items, more: true };
      items.push(e);
    }
    return { items, more: false };
  }

  /** The sources in memory, for the dashboard's filter. */
  sources(): string[] {
    return [...new Set([...this.journal.newest()].map((e) => e.source))].sort();
  }
}
