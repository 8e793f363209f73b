import type { Clock } from '../../core/clock.js';

/**
 * Bandwidth cap of one link: a token bucket in bytes. A batch bigger than a
 * second's worth is allowed to overdraw the bucket, and the next one waits the
 * debt off, so the long-run average holds without splitting batches.
 */
export class ByteBucket {
  private tokens: number;
  private at: number;

  constructor(
    private readonly bytesPerSecond: number,
    private readonly clock: Clock,
  ) {
    this.tokens = bytesPerSecond;
    this.at = clock.now();
  }

  /** Waits until the bucket is out of debt; immediate when the cap is 0 (none). */
  async ready(signal?: AbortSignal): Promise<void> {
    if (this.bytesPerSecond <= 0) return;
    this.refill();
    if (this.tokens < 0) {
      await this.clock.sleep(Math.ceil((-this.tokens / this.bytesPerSecond) * 1000), signal);
      this.refill();
    }
  }

  /**
   * Like `ready`, but an abort ends the wait with `false` instead of an error: the drain
   * aborts its pacing sleep when a batch fails or sync stops, and then looks at why itself.
   */
  async waitReady(signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return false;
    if (this.bytesPerSecond <= 0) return true;
    this.refill();
    if (this.tokens >= 0) return true;
    const ms = Math.ceil((-this.tokens / this.bytesPerSecond) * 1000);
    const slept = await this.clock.sleep(ms, signal).then(
      () => true,
      () => false,
    );
    this.refill();
    return slept && !signal.aborted;
  }

  /** Books bytes that were sent (known only after encoding). */
  charge(bytes: number): void {
    if (this.bytesPerSecond <= 0) return;
    this.refill();
    this.tokens -= bytes;
  }

  private refill(): void {
    const now = this.clock.now();
    this.tokens = Math.min(this.bytesPerSecond, this.tokens + ((now - this.at) / 1000) * this.bytesPerSecond);
    this.at = now;
  }
}

/**
 * Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff
 * And Jitter"): a random delay in [initial/2, min(max, initial·2^attempt)], so 50
 * gateways that lost the same broker do not come back in lock-step.
 */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  const floor = Math.min(ceiling, initialMs / 2);
  return Math.round(floor + random() * (ceiling - floor));
}
