import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Role } from './roles.js';

export const SESSION_COOKIE = 'outpost_session';

export interface Session {
  id: string;
  username: string;
  role: Role;
  /** Synchronizer token for cookie-authenticated writes (OWASP CSRF cheat sheet). */
  csrf: string;
  createdAt: number;
  lastSeenAt: number;
}

export interface SessionOptions {
  /** A session unused this long ends. */
  idleMs: number;
  /** A session ends this long after login, however busy. */
  maxAgeMs: number;
  /** Most sessions kept; the least recently used goes first (bounded memory). */
  maxSessions: number;
  now?: () => number;
}

/**
 * Login sessions, in memory: a restart logs everyone out, which on a gateway is an
 * acceptable price for never writing session secrets to the SD card.
 */
export class SessionStore {
  // A Map iterates in insertion order; touching re-inserts, so the first entry is the LRU.
  private readonly sessions = new Map<string, Session>();
  private readonly now: () => number;

  constructor(private readonly o: SessionOptions) {
    this.now = o.now ?? Date.now;
  }

  private readonly endListeners: Array<(id: string) => void> = [];

  /** Called with the id of every session that ends (logout, expiry, eviction, user changed or removed). */
  onEnd(listener: (id: string) => void): void {
    this.endListeners.push(listener);
  }

  private end(id: string): void {
    if (!this.sessions.delete(id)) return;
    for (const listener of this.endListeners) listener(id);
  }

  create(username: string, role: Role): Session {
    const now = this.now();
    const session: Session = {
      id: randomBytes(32).toString('base64url'),
      username,
      role,
      csrf: randomBytes(32).toString('base64url'),
      createdAt: now,
      lastSeenAt: now,
    };
    while (this.sessions.size >= this.o.maxSessions) {
      const oldest = this.sessions.keys().next().value;
      if (oldest === undefined) break;
      this.end(oldest);
    }
    this.sessions.set(session.id, session);
    return session;
  }

  /** The live session for a cookie value, refreshed; undefined when unknown or expired. */
  get(id: string | undefined): Session | undefined {
    if (!id) return undefined;
    const session = this.sessions.get(id);
    if (!session) return undefined;
    const now = this.now();
    if (now - session.lastSeenAt > this.o.idleMs || now - session.createdAt > this.o.maxAgeMs) {
      this.end(id);
      return undefined;
    }
    session.lastSeenAt = now;
    this.sessions.delete(id);
    this.sessions.set(id, session);
    return session;
  }

  destroy(id: string): void {
    this.end(id);
  }

  /**
   * Ends the sessions past their idle or maximum age. `get` notices expiry only when the
   * session is used; a dashboard that only listens on its live connection sends nothing, so
   * without a sweep its session (and that connection) would outlive the limits.
   */
  sweep(): number {
    const now = this.now();
    let n = 0;
    for (const [id, s] of this.sessions) {
      if (now - s.lastSeenAt > this.o.idleMs || now - s.createdAt > this.o.maxAgeMs) {
        this.end(id);
        n++;
      }
    }
    return n;
  }

  /** Ends every session of a user (password change, role change, removal). */
  destroyUser(username: string): number {
    let n = 0;
    for (const [id, s] of this.sessions) {
      if (s.username === username) {
        this.end(id);
        n++;
      }
    }
    return n;
  }

  get size(): number {
    return this.sessions.size;
  }
}

export function csrfMatches(session: Session, given: string | undefined): boolean {
  if (!given) return false;
  const a = Buffer.from(session.csrf);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Reads one cookie from a Cookie header without a dependency (RFC 6265 §5.4 syntax). */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** `Set-Cookie` value: HttpOnly (no script reads it), SameSite=Strict, Secure when served over TLS. */
export function sessionCookie(value: string, options: { secure: boolean; maxAgeSeconds?: number; name?: string }): string {
  const parts = [`${options.name ?? SESSION_COOKIE}=${value}`, 'Path=/', 'HttpOnly', 'SameSite=Strict'];
  if (options.secure) parts.push('Secure');
  if (options.maxAgeSeconds !== undefined) parts.push(`Max-Age=${options.maxAgeSeconds}`);
  return parts.join('; ');
}
