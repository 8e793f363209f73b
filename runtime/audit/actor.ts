import { plainAddress } from '../net.js';
import type { Principal } from '../auth/roles.js';

/**
 * Who gave a command, as the audit trail and the logs name it. Stable across restarts and
 * renames of nothing but the actor itself: a username, a token's name (never its value), an
 * MQTT client id, an adapter id.
 */
export interface AuditActor {
  kind: 'user' | 'token' | 'loopback' | 'mqtt' | 'schedule' | 'upstream' | 'adapter' | 'flow' | 'cli' | 'http' | 'system';
  name: string;
  /** MQTT clients: the username they logged in with, when they did. */
  username?: string;
}

/** An actor and where the command came from (a client address), when there is one. */
export interface CommandSource {
  actor: AuditActor;
  address?: string;
}

/** The actor of an authenticated HTTP request (res.locals.principal). */
function actorOf(principal: Principal | undefined): AuditActor {
  if (!principal) return { kind: 'system', name: 'anonymous' };
  if (principal.kind === 'session') return { kind: 'user', name: principal.name };
  if (principal.kind === 'token') return { kind: 'token', name: principal.name };
  return { kind: 'loopback', name: principal.name };
}

/** A principal and the client address of its request, as a setpoint source. */
export function sourceOf(principal: Principal | undefined, address: string | undefined): CommandSource {
  if (!address) return { actor: actorOf(principal) };
  const plain = plainAddress(address);
  // No login in front (a server composed without runtime/auth): the address is all there is.
  return { actor: principal ? actorOf(principal) : { kind: 'http', name: plain }, address: plain };
}

const PREFIXED: Record<string, AuditActor['kind']> = {
  upstream: 'upstream',
  adapter: 'adapter',
  'node-red': 'flow',
  mqtt: 'mqtt',
  http: 'http',
  user: 'user',
  token: 'token',
};

/**
 * The older string form of a setpoint source (`schedule`, `upstream:<source>`,
 * `adapter:<id>`, `node-red:<node>`, `mqtt:<client>`), still used by callers that have no
 * principal: turned into an actor so every entry has the same shape.
 */
export function actorFromSource(source: string): AuditActor {
  if (source === 'schedule') return { kind: 'schedule', name: 'schedule' };
  const colon = source.indexOf(':');
  const kind = colon > 0 ? PREFIXED[source.slice(0, colon)] : undefined;
  if (kind) return { kind, name: source.slice(colon + 1) };
  return { kind: 'system', name: source };
}

/** A setpoint source in either form, as one shape. */
export function toSource(source: string | CommandSource): CommandSource {
  return typeof source === 'string' ? { actor: actorFromSource(source) } : source;
}

/** How the actor reads in a log line and on the dashboard: `user alice`, `upstream:central`. */
export function actorText(actor: AuditActor): string {
  switch (actor.kind) {
    case 'user':
    case 'token':
    case 'mqtt':
      return `${actor.kind} ${actor.name}${actor.username ? ` (user ${actor.username})` : ''}`;
    case 'schedule':
    case 'loopback':
      return actor.kind;
    default:
      return `${actor.kind}:${actor.name}`;
  }
}
