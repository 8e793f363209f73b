import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export type FlowsRole = 'admin' | 'operator' | 'viewer';

/** Who is asking, as the gateway's auth (runtime/auth) sees it. */
export interface FlowsUser {
  username: string;
  role: FlowsRole;
}

/**
 * The injected login check: resolves the user behind a request (session cookie, bearer
 * token, trusted loopback tool) or null. Node-RED's own login is switched off; this is
 * the only way in, so the editor has the same users and roles as the dashboard.
 */
export type Authorize = (req: IncomingMessage) => Promise<FlowsUser | null>;

/** What Node-RED's `adminAuth.tokens` hands back: `*` may deploy, `read` may only look. */
export interface NodeRedUser {
  username: string;
  permissions: '*' | 'read';
}

/**
 * The request header through which the front door tells Node-RED who passed it
 * (Node-RED's `adminAuth.tokenHeader`, meant for exactly this reverse-proxy setup).
 * Any value a client sends itself is overwritten or removed.
 */
export const TOKEN_HEADER = 'x-outpost-flows-token';

/** Only admins deploy (issue 9); operators and viewers get Node-RED's read-only editor. */
export function nodeRedPermissions(role: FlowsRole): NodeRedUser['permissions'] {
  return role === 'admin' ? '*' : 'read';
}

/**
 * Short-lived, single-process tokens that carry an already-authorised user from the
 * front-door middleware into Node-RED. Bounded: at most `max` live at once (oldest are
 * dropped first), each valid for `ttlMs` — a request or websocket upgrade needs them
 * only for the moment Node-RED checks permissions.
 */
export class EditorTokens {
  private readonly live = new Map<string, { user: NodeRedUser; expires: number }>();

  constructor(
    private readonly ttlMs = 60_000,
    private readonly max = 2_000,
    private readonly now: () => number = Date.now,
  ) {}

  mint(user: FlowsUser): string {
    const token = randomBytes(24).toString('base64url');
    while (this.live.size >= this.max) {
      const oldest = this.live.keys().next().value as string;
      this.live.delete(oldest);
    }
    this.live.set(token, { user: { username: user.username, permissions: nodeRedPermissions(user.role) }, expires: this.now() + this.ttlMs });
    return token;
  }

  lookup(token: string): NodeRedUser | null {
    const entry = this.live.get(token);
    if (!entry) return null;
    if (entry.expires < this.now()) {
      this.live.delete(token);
      return null;
    }
    return entry.user;
  }

  revoke(token: string): void {
    this.live.delete(token);
  }

  get size(): number {
    return this.live.size;
  }
}
