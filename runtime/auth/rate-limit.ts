import { isIP } from 'node:net';
import { plainAddress } from '../net.js';

/**
 * Failed-login throttle (OWASP Authentication cheat sheet, "account lockout" done as
 * delay): failures are counted per (address, username) and per address in a sliding
 * window; over the limit, further attempts are refused before the password is even
 * hashed, so a guesser burns neither our CPU nor a real user's lockout elsewhere.
 * Memory is bounded: at most `maxKeys` keys, oldest dropped first.
 */
export interface ThrottleOptions {
  /** Failures allowed per (address, username) in the window. */
  maxFailures: number;
  /** Failures allowed per address, across usernames. */
  maxFailuresPerAddress: number;
  /**
   * Failures allowed per username, across addresses (guessing spread over many addresses).
   * Reaching it refuses that username's logins for the window: high enough that users
   * mistyping never meet it. Unset: no such limit.
   */
  maxFailuresPerUser?: number;
  windowMs: number;
  maxKeys?: number;
  now?: () => number;
}

/**
 * A password check under way, counted against the limits as a failure until it settles: a
 * guesser sending sixty passwords at once over parallel connections gets as many checks as
 * one sending them one by one.
 */
export interface LoginAttempt {
  failed(): void;
  succeeded(): void;
  /** Settled without a check (refused before hashing): counts for nothing. */
  abandoned(): void;
}

export class LoginThrottle {
  private readonly failures = new Map<string, number[]>();
  /** Checks under way per key (present only while > 0). */
  private readonly pending = new Map<string, number>();
  private readonly now: () => number;
  private readonly maxKeys: number;

  constructor(private readonly o: ThrottleOptions) {
    this.now = o.now ?? Date.now;
    this.maxKeys = o.maxKeys ?? 10_000;
  }

  /** The counters an attempt of `username` from `address` counts against, with their limits. */
  private keys(address: string, username: string): Array<[string, number]> {
    const from = throttleAddress(address);
    const keys: Array<[string, number]> = [
      [`u|${from}|${username}`, this.o.maxFailures],
      [`a|${from}`, this.o.maxFailuresPerAddress],
    ];
    if (this.o.maxFailuresPerUser !== undefined) keys.push([`n|${username}`, this.o.maxFailuresPerUser]);
    return keys;
  }

  /** Seconds to wait before the next attempt is allowed; 0 when it is allowed now. */
  retryAfterSeconds(address: string, username: string): number {
    const now = this.now();
    const wait = Math.max(...this.keys(address, username).map(([key, limit]) => this.waitFor(key, limit, now)));
    return Math.ceil(wait / 1000);
  }

  /**
   * Starts a password check: refused (seconds to wait) when failures and checks under way
   * together reach a limit, else counted as under way until the attempt settles.
   */
  begin(address: string, username: string): LoginAttempt | number {
    const wait = this.retryAfterSeconds(address, username);
    if (wait > 0) return wait;
    const keys = this.keys(address, username).map(([key]) => key);
    for (const key of keys) this.pending.set(key, (this.pending.get(key) ?? 0) + 1);
    let settled = false;
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      for (const key of keys) {
        const n = this.pending.get(key)! - 1;
        if (n > 0) this.pending.set(key, n);
        else this.pending.delete(key);
      }
      return true;
    };
    return {
      failed: () => settle() && this.fail(address, username),
      succeeded: () => settle() && this.succeed(address, username),
      abandoned: () => void settle(),
    };
  }

  fail(address: string, username: string): void {
    const now = this.now();
    for (const [key, limit] of this.keys(address, username)) this.add(key, now, limit);
  }

  /** A success clears the per-user count for that address (not the address or username counts). */
  succeed(address: string, username: string): void {
    this.failures.delete(`u|${throttleAddress(address)}|${username}`);
  }

  private recent(key: string, now: number): number[] {
    const list = this.failures.get(key);
    if (!list) return [];
    const fresh = list.filter((t) => now - t < this.o.windowMs);
    if (fresh.length === 0) this.failures.delete(key);
    else if (fresh.length !== list.length) this.failures.set(key, fresh);
    return fresh;
  }

  private waitFor(key: string, limit: number, now: number): number {
    const fresh = this.recent(key, now);
    const underWay = this.pending.get(key) ?? 0;
    if (fresh.length + underWay < limit) return 0;
    // The limit is reached by checks still under way: their outcome decides, shortly.
    if (fresh.length < limit) return 1000;
    // Allowed again once the oldest failure that still counts leaves the window.
    return fresh[fresh.length - limit]! + this.o.windowMs - now;
  }

  private add(key: string, now: number, limit: number): void {
    const fresh = this.recent(key, now);
    fresh.push(now);
    // Keep only what can matter for the limit: bounded per key.
    if (fresh.length > limit) fresh.splice(0, fresh.length - limit);
    this.failures.delete(key);
    this.failures.set(key, fresh);
    while (this.failures.size > this.maxKeys) {
      const oldest = this.failures.keys().next().value;
      if (oldest === undefined) break;
      this.failures.delete(oldest);
    }
  }

  get trackedKeys(): number {
    return this.failures.size;
  }
}

/**
 * The unit a client is counted by: an IPv4 address, or an IPv6 /64 — one host usually holds
 * a whole /64 and can pick a fresh address for every guess (RFC 4291, interface identifiers).
 */
export function throttleAddress(address: string): string {
  const a = plainAddress(address);
  if (isIP(a) !== 6) return a;
  const [head = '', tail = ''] = a.split('::');
  const left = head ? head.split(':') : [];
  const right = a.includes('::') && tail ? tail.split(':') : [];
  const groups = a.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}
