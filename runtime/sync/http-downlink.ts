import { mkdir, readFile } from 'node:fs/promises';
import { appliedWithin } from './apply-timeout.js';
import { join } from 'node:path';
import { OutpostError, toOutpostError } from '../../core/errors.js';
import '../../storage/errors.js'; // registers the STORAGE_* codes thrown here
import './errors.js';
import { writeJsonState } from '../durable-file.js';
import type { Logger } from '../log.js';
import type { DownlinkAck, DownlinkCommand } from './link.js';

/** What the poller needs from the HTTP link: one signed request. */
export type HttpRequester = (method: 'GET' | 'POST', url: URL, body: Buffer | undefined) => Promise<HttpReply>;

/** `retryAfterMs`: the response's Retry-After (RFC 9110 §10.2.3), parsed. */
export interface HttpReply {
  status: number;
  retryAfterMs: number | undefined;
  text: string;
}

export interface HttpDownlinkOptions {
  linkName: string;
  gatewayId: string;
  /** Base URL: commands are fetched from `<url>/downlink`, results posted to `<url>/downlink/ack`. */
  url: string;
  intervalMs: number;
  limit: number;
  maxBackoffMs: number;
  /** How long one command may take to be applied before the poll counts as failed. */
  applyTimeoutMs: number;
  /** Folder of the durable poll state (`<dataDir>/sync`). */
  stateDir: string;
  request: HttpRequester;
  /** Applies one command exactly like the MQTT downlink (Downlink.handle via the service). */
  apply(cmd: DownlinkCommand): Promise<DownlinkAck>;
  log: Logger;
  random?: () => number;
}

/** Durable poll state: where to continue, what was answered lately, acks not yet delivered. */
interface PollState {
  after: string | null;
  /** requestId → ack, newest last (bounded): a command served again is answered, not applied again. */
  recent: Array<[string, DownlinkAck]>;
  /** Acks the server has not confirmed yet (2xx), oldest first (bounded). */
  pending: Array<{ cursor: string; ack: DownlinkAck }>;
}

const RECENT_MAX = 500;
const PENDING_MAX = 1000;
const MAX_RESPONSE_BYTES = 1024 * 1024;

/**
 * HTTP poll downlink (issue 8, "Downlink … MQTT topic or HTTP poll"). Every `intervalMs`:
 *
 *   GET <url>/downlink?after=<cursor>&limit=<n>  →  200 {"commands":[{"cursor","requestId","type","id","v",…}]} | 204
 *
 * Each command is applied through the same path as the MQTT downlink (`Downlink.handle`:
 * `Ingest.setpoint` validation), then the poll state `{after, recent, pending}` is written
 * atomically BEFORE the acknowledgement is posted:
 *
 *   POST <url>/downlink/ack  {"gw","cursor","requestId","ok","result"|"error","t"}
 *
 * so a restart resumes after the last applied command (no command applied twice; the
 * requestIds answered lately are kept too, for a server that serves one again), and an
 * ack that could not be delivered is retried before the next GET. Errors (transport,
 * 5xx) back off exponentially with jitter up to `maxBackoffMs`; 429/503 honour Retry-After.
 * Window of duplicate application: a crash between applying a command and the state
 * write (one fsync) re-applies that one command on restart.
 */
export class HttpDownlinkPoller {
  private state: PollState = { after: null, recent: [], pending: [] };
  private readonly recent = new Map<string, DownlinkAck>();
  private readonly file: string;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private loop: Promise<void> | undefined;
  private failures = 0;
  private wakeUp: (() => void) | undefined;
  /** Polls done, commands applied/answered, acks delivered: for tests and the snapshot. */
  readonly counts = { polls: 0, errors: 0, commands: 0, acks: 0 };
  lastError: string | undefined;

  constructor(private readonly o: HttpDownlinkOptions) {
    this.file = join(o.stateDir, `downlink-${o.linkName}.json`);
  }

  get cursor(): string | null {
    return this.state.after;
  }

  async start(): Promise<void> {
    await mkdir(this.o.stateDir, { recursive: true });
    this.state = await this.load();
    for (const [rid, ack] of this.state.recent) this.recent.set(rid, ack);
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.wakeUp?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (this.running) {
      let delay = this.o.intervalMs;
      try {
        await this.flushAcks();
        const more = await this.pollOnce();
        this.failures = 0;
        this.lastError = undefined;
        if (more) delay = 0; // a full page: fetch the next one at once
      } catch (err) {
        const e = toOutpostError(err, 'SYNC_LINK_DOWN');
        this.failures++;
        this.counts.errors++;
        this.lastError = e.message;
        const backoffMs = Math.min(this.o.maxBackoffMs, this.o.intervalMs * 2 ** this.failures);
        // Jitter in [0.5, 1) × backoff: a fleet polling one server does not retry in lock-step.
        const jittered = Math.round(backoffMs * (0.5 + 0.5 * (this.o.random ?? Math.random)()));
        const retryAfterMs = (e.details as { retryAfterMs?: number } | undefined)?.retryAfterMs;
        delay = Math.max(jittered, retryAfterMs ?? 0);
        this.o.log.warn(
          { link: this.o.linkName, code: e.code, reason: e.message, backoffMs, retryInMs: delay, failures: this.failures },
          'downlink poll failed',
        );
      }
      if (!this.running) break;
      if (delay > 0) {
        await new Promise<void>((resolve) => {
          this.wakeUp = resolve;
          this.timer = setTimeout(resolve, delay);
        });
        this.wakeUp = undefined;
      }
    }
  }

  /** One GET; applies and acks what it returned. True when the page was full. */
  private async pollOnce(): Promise<boolean> {
    const url = new URL(this.o.url.replace(/\/+$/, '') + '/downlink');
    if (this.state.after !== null) url.searchParams.set('after', this.state.after);
    url.searchParams.set('limit', String(this.o.limit));
    this.counts.polls++;
    const res = await this.o.request('GET', url, undefined);
    this.check(res, 'GET downlink');
    if (res.status === 204 || res.text.trim() === '') return false;
    if (res.text.length > MAX_RESPONSE_BYTES)
      throw new OutpostError('SYNC_REJECTED', `downlink response is ${res.text.length} bytes; at most ${MAX_RESPONSE_BYTES}`);
    let body: unknown;
    try {
      body = JSON.parse(res.text);
    } catch {
      throw new OutpostError('SYNC_REJECTED', 'downlink response is not JSON: expected {"commands":[…]}');
    }
    const commands = (body as { commands?: unknown } | null)?.commands;
    if (!Array.isArray(commands)) throw new OutpostError('SYNC_REJECTED', 'downlink response has no "commands" array');
    for (const raw of commands.slice(0, this.o.limit)) {
      if (!this.running) return false;
      const item = raw as { cursor?: unknown } | null;
      const cursor = typeof item?.cursor === 'string' || typeof item?.cursor === 'number' ? String(item.cursor) : undefined;
      // Without a cursor the poll position cannot move past it: refuse the page, do not guess.
      if (cursor === undefined) throw new OutpostError('SYNC_REJECTED', 'downlink command without a "cursor"; the server must give each command its position');
      const ack = await this.answer(raw);
      this.state.after = cursor;
      if (ack.requestId !== null) {
        this.recent.delete(ack.requestId);
        this.recent.set(ack.requestId, ack);
        while (this.recent.size > RECENT_MAX) this.recent.delete(this.recent.keys().next().value!);
      }
      this.state.pending.push({ cursor, ack });
      if (this.state.pending.length > PENDING_MAX) {
        const dropped = this.state.pending.shift()!;
        this.o.log.warn({ link: this.o.linkName, requestId: dropped.ack.requestId }, 'downlink ack dropped: too many undelivered acks');
      }
      // Durable before the ack goes out: a restart resumes after this command.
      await this.save();
      await this.flushAcks().catch((err: Error) => this.o.log.debug({ link: this.o.linkName, reason: err.message }, 'downlink ack kept for the next round'));
    }
    return commands.length >= this.o.limit;
  }

  private async answer(raw: unknown): Promise<DownlinkAck> {
    this.counts.commands++;
    const rid = (raw as { requestId?: unknown } | null)?.requestId;
    const previous = typeof rid === 'string' ? this.recent.get(rid) : undefined;
    if (previous) {
      this.o.log.info({ link: this.o.linkName, requestId: rid }, 'downlink command served again: answered from memory, not applied again');
      return previous;
    }
    const { cursor: _cursor, ...command } = (raw ?? {}) as Record<string, unknown>;
    const cmd: DownlinkCommand = {
      source: `http-poll:${this.o.linkName}`,
      payload: Buffer.from(JSON.stringify(raw === null || typeof raw !== 'object' ? raw : command)),
    };
    return appliedWithin(this.o.apply(cmd), this.o.applyTimeoutMs);
  }

  /** Posts every pending ack in order; stops at the first failure (kept for the next round). */
  private async flushAcks(): Promise<void> {
    if (this.state.pending.length === 0) return;
    const url = new URL(this.o.url.replace(/\/+$/, '') + '/downlink/ack');
    while (this.state.pending.length > 0) {
      const { cursor, ack } = this.state.pending[0]!;
      const res = await this.o.request('POST', url, Buffer.from(JSON.stringify({ gw: this.o.gatewayId, cursor, ...ack })));
      this.check(res, 'POST downlink ack');
      this.state.pending.shift();
      this.counts.acks++;
    }
    await this.save();
  }

  private check(res: HttpReply, what: string): void {
    if (res.status >= 200 && res.status < 300) return;
    if (res.status === 429 || res.status === 503) {
      const retryAfterMs = res.retryAfterMs;
      throw new OutpostError('SYNC_THROTTLED', `${what}: HTTP ${res.status}`, { details: { status: res.status, retryAfterMs } });
    }
    throw new OutpostError(res.status >= 500 ? 'SYNC_LINK_DOWN' : 'SYNC_REJECTED', `${what}: HTTP ${res.status} ${res.text.slice(0, 200)}`, {
      details: { status: res.status },
    });
  }

  private async load(): Promise<PollState> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { after: null, recent: [], pending: [] };
      throw new OutpostError('STORAGE_OPEN_FAILED', `cannot read downlink poll state ${this.file}: ${(err as Error).message}`, { cause: err });
    }
    try {
      const s = JSON.parse(text) as PollState;
      if ((s.after !== null && typeof s.after !== 'string') || !Array.isArray(s.recent) || !Array.isArray(s.pending)) throw new Error('unexpected shape');
      return s;
    } catch (err) {
      throw new OutpostError(
        'STORAGE_CORRUPT',
        `downlink poll state ${this.file} is unreadable (${(err as Error).message}); delete it to poll from the server's start`,
      );
    }
  }

  /** Atomic, durable replace (runtime/durable-file.ts), as the sync cursor. */
  private save(): Promise<void> {
    this.state.recent = [...this.recent.entries()];
    return writeJsonState(this.file, this.state);
  }
}
