import { mkdir, open, readFile, rename, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../../core/clock.js';
import type { EventSeverity, EventSink, GatewayEventInput } from '../../core/events.js';
import { RefusalLimiter } from '../audit/bounds.js';
import type { Logger } from '../log.js';

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

const FILE = 'events.jsonl';
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
  private readonly maxFileBytes: number;
  private readonly keepFiles: number;
  private readonly tailSize: number;
  private readonly tail: GatewayEvent[] = [];
  private readonly limiter: RefusalLimiter;
  private nextId = 1;
  private handle: FileHandle | undefined;
  private size = 0;
  private pending: string[] = [];
  private writing: Promise<void> | undefined;
  private closed = false;
  private failing = false;
  private brokenLine = false;
  /** Events that never reached the disk (write failures, a full queue, records after close). */
  dropped = 0;
  /** Events left out by the rate limit. */
  suppressed = 0;

  constructor(private readonly o: EventLogOptions) {
    this.maxFileBytes = o.maxFileBytes ?? 1024 * 1024;
    this.keepFiles = Math.max(1, o.keepFiles ?? 3);
    this.tailSize = o.tailSize ?? 2_000;
    this.limiter = new RefusalLimiter(o.perMinute ?? 10);
  }

  private file(n: number): string {
    return join(this.o.dir, n === 0 ? FILE : `events.${n}.jsonl`);
  }

  /** Loads the newest events from the files and opens the current one for appending. */
  async open(): Promise<void> {
    await mkdir(this.o.dir, { recursive: true });
    let skipped = 0;
    for (let n = this.keepFiles - 1; n >= 0; n--) {
      let text: string;
      try {
        text = await readFile(this.file(n), 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      for (const line of text.split('\n')) {
        if (line === '') continue;
        try {
          const event = JSON.parse(line) as GatewayEvent;
          if (typeof event.id !== 'number' || typeof event.t !== 'number') throw new TypeError('no id or time');
          this.keep(event);
          this.nextId = Math.max(this.nextId, event.id + 1);
        } catch (err) {
          // A line cut by a crash or a full disk: the others are still good.
          if (!(err instanceof SyntaxError || err instanceof TypeError)) throw err;
          skipped++;
        }
      }
    }
    if (skipped > 0) this.o.log.warn({ skipped, dir: this.o.dir }, 'event log files hold unreadable lines (cut by a crash or a full disk); they were skipped');
    this.handle = await open(this.file(0), 'a');
    this.size = (await stat(this.file(0))).size;
  }

  private keep(event: GatewayEvent): void {
    this.tail.push(event);
    // Trimmed in steps, not per event.
    if (this.tail.length > this.tailSize + 256) this.tail.splice(0, this.tail.length - this.tailSize);
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
        id: this.nextId++,
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
      this.keep(event);
      if (this.closed || this.pending.length >= MAX_PENDING) {
        this.lost(1, this.closed ? 'the event log is closed' : 'the event log write queue is full');
        return event;
      }
      this.pending.push(`${JSON.stringify(event)}\n`);
      this.writing ??= this.drain().finally(() => (this.writing = undefined));
      return event;
    } catch (err) {
      // A recording must never fail what it records (data that does not serialise, say).
      this.lost(1, (err as Error).message);
      return undefined;
    }
  }

  private lost(events: number, reason: string): void {
    this.dropped += events;
    if (this.failing) return;
    this.failing = true;
    this.o.log.error({ reason, dir: this.o.dir }, 'events are not being written (further losses are counted, not logged)');
  }

  /** Writes what is pending, batch by batch, rotating before a file would pass the bound. */
  private async drain(): Promise<void> {
    while (this.pending.length > 0) {
      const lines = this.pending;
      this.pending = [];
      let i = 0;
      try {
        while (i < lines.length) {
          let chunk = this.brokenLine ? '\n' : '';
          let bytes = Buffer.byteLength(chunk);
          let end = i;
          for (; end < lines.length; end++) {
            const n = Buffer.byteLength(lines[end]!);
            if (this.size + bytes + n > this.maxFileBytes && (this.size > 0 || end > i)) break;
            chunk += lines[end];
            bytes += n;
          }
          if (end === i) {
            await this.rotate();
            continue;
          }
          this.handle ??= await open(this.file(0), 'a');
          await this.handle.appendFile(chunk);
          i = end;
          this.size += bytes;
          this.brokenLine = false;
          if (this.failing) {
            this.failing = false;
            this.o.log.warn({ dropped: this.dropped }, 'events are written again');
          }
        }
      } catch (err) {
        this.brokenLine = true;
        this.lost(lines.length - i, (err as Error).message);
      }
    }
  }

  private async rotate(): Promise<void> {
    await this.handle?.close();
    this.handle = undefined;
    for (let n = this.keepFiles - 1; n >= 1; n--) {
      try {
        await rename(this.file(n - 1), this.file(n));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    this.handle = await open(this.file(0), 'a');
    this.size = 0;
  }

  /** Resolves once every event recorded so far is written (or counted as lost). */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
  }

  /** Writes what is pending and closes the file; later events are kept in memory only. */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close();
  }

  /**
   * Newest first, from the in-memory tail: at most `limit` events older than `before` (an id),
   * of `severity` or worse, from one `source`.
   */
  query(q: { limit: number; before?: number; severity?: EventSeverity; source?: string }): { items: GatewayEvent[]; more: boolean } {
    const items: GatewayEvent[] = [];
    const min = q.severity ? severityRank(q.severity) : 0;
    const first = Math.max(0, this.tail.length - this.tailSize);
    for (let i = this.tail.length - 1; i >= first; i--) {
      const e = this.tail[i]!;
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
    return [...new Set(this.tail.slice(-this.tailSize).map((e) => e.source))].sort();
  }
}
