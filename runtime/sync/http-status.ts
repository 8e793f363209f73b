import type { Logger } from '../log.js';
import type { HttpReply } from './http-downlink.js';
import type { StorageReport } from './link.js';

/** Body format of a status document (`x-outpost-lane: status`), told apart from batches (`format` of codec.ts). */
const STATUS_FORMAT = 'outpost-status/1';

export interface HttpStatusReporterOptions {
  linkName: string;
  gatewayId: string;
  /** A signed POST with the link's credentials (HttpLink.request), the lane header set. */
  post(body: Buffer): Promise<HttpReply>;
  log: Logger;
  /** Retry delay after a failure: doubles from initialMs up to maxMs. */
  backoff?: { initialMs: number; maxMs: number };
}

/**
 * The HTTP link's status channel: the storage state POSTed to the link's URL as
 * `{"format":"outpost-status/1","gw":…,"storage":{state,error?,since}}` with
 * `x-outpost-lane: status`, when storage goes read-only and when it recovers. The outbox
 * cannot carry this alarm (it is in the storage that refuses writes), and with the backlog
 * drained no batch would go out to carry a header.
 *
 * One slot: only the newest state waits, so a flapping disk cannot queue anything. Sent again
 * after backoff until a 2xx; a 4xx other than 408/429 means the receiver does not take status
 * documents (an older receiver): warned once, and that state is dropped.
 */
export class HttpStatusReporter {
  private pending: StorageReport | undefined;
  private sending: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private stopped = false;
  private warnedRefusal = false;
  /** Status documents acknowledged, and the last failure (for /api/sync). */
  sent = 0;
  lastError: string | undefined;

  constructor(private readonly o: HttpStatusReporterOptions) {}

  report(storage: StorageReport): void {
    this.pending = storage;
    this.failures = 0;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.kick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.sending;
  }

  private kick(): void {
    if (this.sending || this.timer || this.stopped || !this.pending) return;
    this.sending = this.sendPending().finally(() => {
      this.sending = undefined;
      this.kick();
    });
  }

  private async sendPending(): Promise<void> {
    const storage = this.pending!;
    const body = Buffer.from(JSON.stringify({ format: STATUS_FORMAT, gw: this.o.gatewayId, storage }));
    let reply: HttpReply;
    try {
      reply = await this.o.post(body);
    } catch (err) {
      this.retry((err as Error).message);
      return;
    }
    const { status } = reply;
    if (status >= 200 && status < 300) {
      this.sent++;
      this.failures = 0;
      this.lastError = undefined;
      if (this.pending === storage) this.pending = undefined;
      return;
    }
    if (status >= 500 || status === 408 || status === 429) {
      this.retry(`HTTP ${status}`, reply.retryAfterMs);
      return;
    }
    this.lastError = `HTTP ${status}: ${reply.text.slice(0, 200)}`;
    if (!this.warnedRefusal) {
      this.warnedRefusal = true;
      this.o.log.warn(
        { link: this.o.linkName, status, answer: reply.text.slice(0, 200) },
        'the receiver refused the storage status document; it does not learn of read-only storage from this link',
      );
    }
    if (this.pending === storage) this.pending = undefined;
  }

  private retry(error: string, afterMs?: number): void {
    this.lastError = error;
    const { initialMs, maxMs } = this.o.backoff ?? { initialMs: 1000, maxMs: 60_000 };
    const delay = afterMs ?? Math.min(maxMs, initialMs * 2 ** this.failures);
    this.failures++;
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.kick();
    }, delay);
    this.timer.unref();
  }
}
