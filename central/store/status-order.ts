import type { GatewayState, GatewayStatus } from './contract.js';

/**
 * The gateway's reported status after `incoming` is committed on top of `current` (both
 * stores run it under their per-gateway lock: the level store's KeyedLock, PostgreSQL's row
 * lock on the gateway), or `undefined` when `incoming` changes nothing. The rule is the one in
 * contract.ts (`GatewayStatus`):
 *
 * - The connection part (`state`, `since`, `session`) is the newest session's. An MQTT will
 *   and the next connection's `online` may reach two members of a shared subscription and be
 *   committed in either order (runtime/sync/mqtt-link.ts names the session in both); within
 *   one session `offline` wins (nothing follows the will of a session), then the later commit.
 *   A status with a state but no session (gateways before sessions) ranks by its arrival, so
 *   among those the newest arrival wins, as before.
 * - The storage part is the newest storage report committed: a storage-only document (HTTP
 *   `outpost-status/1`, a RockBLOCK storage state) replaces it and keeps the connection part;
 *   an accepted `online` is the gateway's whole picture when it was published, so its storage
 *   (none: ok) replaces it; an `offline` (a will is written at connect, it knows nothing of
 *   storage) keeps it unless it carries one.
 * - A status of an older session is ignored whole (its storage is older too).
 */
export function mergeStatus(current: GatewayStatus | undefined, incoming: GatewayStatus): GatewayStatus | undefined {
  if (!current) return incoming;
  if (incoming.state === undefined) {
    // Storage only: the connection part stays.
    const merged: GatewayStatus = { ...withoutStorage(current), at: Math.max(current.at, incoming.at), via: incoming.via };
    if (incoming.storage) merged.storage = incoming.storage;
    return merged;
  }
  if (current.state !== undefined && outranks(current, incoming)) return undefined;
  const merged: GatewayStatus = { ...withoutStorage(incoming), at: Math.max(current.at, incoming.at) };
  const storage = incoming.storage ?? (incoming.state === 'offline' ? current.storage : undefined);
  if (storage) merged.storage = storage;
  return merged;
}

/** Whether the connection part of `a` (already committed) beats `b` (arriving now). */
function outranks(a: GatewayStatus, b: GatewayStatus): boolean {
  const sa = sessionOf(a);
  const sb = sessionOf(b);
  if (sa !== sb) return sa > sb;
  // Same session: offline wins; same state: the later commit (b) wins.
  return a.state === 'offline' && b.state === 'online';
}

/** A status without a session counts as the session of its arrival (central's clock). */
function sessionOf(s: GatewayStatus): number {
  return s.session ?? s.at;
}

function withoutStorage(s: GatewayStatus): GatewayStatus {
  const { storage: _storage, ...rest } = s;
  return rest;
}

/**
 * `lastSeen` and `lastVia` of a gateway's state: the newest arrival of its last batch, its
 * status and its last satellite message — the satellite message by when it was sent (the
 * webhook may deliver it late). The same in every store.
 */
export function settleLastSeen(state: GatewayState): GatewayState {
  const arrivals: Array<[number, GatewayState['lastVia']]> = [];
  if (state.lastReceipt) arrivals.push([state.lastReceipt.at, state.lastReceipt.via]);
  if (state.status) arrivals.push([state.status.at, state.status.via]);
  if (state.satellite) arrivals.push([state.satellite.transmitTime, 'rockblock']);
  const newest = arrivals.sort((a, b) => b[0] - a[0])[0];
  if (newest) {
    state.lastSeen = newest[0];
    state.lastVia = newest[1];
  }
  return state;
}
