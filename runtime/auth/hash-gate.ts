import { OutpostError } from '../../core/errors.js';

/**
 * Password checks running at once, at most, for the whole process: scrypt costs ~50 ms of CPU
 * and 16 MB a check on a Raspberry Pi 4 (runtime/auth/passwords.ts), and a hundred parallel
 * logins, over MQTT and HTTP together, hashed a hundred times at once. More wait in a short
 * queue; beyond it they are refused at once (LOGIN_THROTTLED, retry in a second).
 */
export class HashGate {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    readonly maxRunning: number,
    readonly maxWaiting: number,
  ) {}

  async run<T>(check: () => Promise<T>): Promise<T> {
    if (this.running >= this.maxRunning) {
      if (this.waiting.length >= this.maxWaiting) {
        throw new OutpostError('LOGIN_THROTTLED', 'too many password checks at once: try again in a moment', { details: { retryAfterSeconds: 1 } });
      }
      // The slot of a finishing check passes straight to the oldest waiting one.
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running++;
    }
    try {
      return await check();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }

  /** Checks running and waiting now. */
  get load(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiting.length };
  }
}

/** The process's gate: MQTT logins, dashboard logins and password changes share it. */
export const passwordChecks = new HashGate(2, 64);
