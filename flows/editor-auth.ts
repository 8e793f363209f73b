import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { OutpostError } from '../core/errors.js';

export type FlowsRole = 'admin' | 'operator' | 'viewer';

/** Who is asking, as the gateway's auth (runtime/auth) sees it. */
export interface FlowsUser {
  username: string;
  role: FlowsRole;
}

/**
 * The injected login check for HTTP: resolves the user behind a request (session cookie,
 * bearer token, trusted loopback tool) or null. Node-RED's own login is switched off; this
 * is the only way in, so the editor has the same users and roles as the dashboard.
 */
export type Authorize = (req: IncomingMessage) => Promise<FlowsUser | null>;

/**
 * The injected check for websocket upgrades (editor comms, websocket nodes): the user, or
 * null when there is none or the Origin is not this server's own. Browsers apply no
 * same-origin policy to websockets, so without the Origin check any page the user visits
 * (a DNS-rebinding page included) could open one with the user's cookie.
 */
export type AuthorizeUpgrade = (req: IncomingMessage) => FlowsUser | null | Promise<FlowsUser | null>;

/** A change request an admin made to the flows admin API (a deploy, an inject button, ...), once answered. */
export interface FlowChangeEvent {
  user: string;
  role: string;
  /** The response was sent complete with a status below 400. */
  ok: boolean;
  status: number;
  method: string;
  path: string;
}

/** What Node-RED's `adminAuth.tokens` hands back: only admins get this far, with every permission. */
export interface NodeRedUser {
  username: string;
  permissions: '*';
}

/**
 * The request header through which the front door tells Node-RED who passed it
 * (Node-RED's `adminAuth.tokenHeader`, meant for exactly this reverse-proxy setup).
 * Any value a client sends itself is overwritten or removed.
 */
export const TOKEN_HEADER = 'x-outpost-flows-token';

/**
 * The editor, its admin API and its comms websocket are admin-only (issue 18), as the
 * gateway's HTTP guard has it for `/flows` (`auth.adminPaths`). Checked again here, where
 * the user is handed to Node-RED, so a front door that forgot does not open it.
 */
export function assertFlowsAdmin(user: FlowsUser): void {
  if (user.role !== 'admin') throw new OutpostError('FORBIDDEN', `the flow editor is for admins; "${user.username}" is ${user.role}`);
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
    assertFlowsAdmin(user);
    const token = randomBytes(24).toString('base64url');
    while (this.live.size >= this.max) {
      const oldest = this.live.keys().next().value as string;
      this.live.delete(oldest);
    }
    this.live.set(token, { user: { username: user.username, permissions: '*' }, expires: this.now() + this.ttlMs });
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
