// What a configuration pushed by the central side may change on its own (issue 26, remote
// config). The threat is a central side that is compromised or wrong: it already decides
// setpoints, so what it must not gain by pushing a config is (1) wider access to the site
// (logins, tokens, listeners, the broker's users), (2) the data and the link credentials sent
// somewhere else (link URLs, auth, secret files), (3) files of the gateway's disk read into
// what goes upstream or into its answers (secret files, template and drop folders, serial
// devices), (4) more power for itself (turning on `allowSecurity` or `restart`). Those keys
// change only with `sync.remoteConfig.allowSecurity: true` in the active config, which a push
// cannot turn on. runtime/sync/README.md, "Remote configuration", says the same for operators.
import type { AdapterEntry, Config } from './schema.js';

/** Subtrees of the validated config whose change needs `allowSecurity` (any key below them). */
const PROTECTED = [
  // Identity: the topic root, the commands' `gw` binding and the data's origin follow it.
  'gateway.id',
  // Users, sessions, audit and the outbox live there.
  'dataDir',
  'broker.mqtt.host',
  'broker.mqtts',
  'broker.anonymous',
  'broker.users',
  'http.host',
  'http.tokens',
  'http.tls',
  'http.trustedProxies',
  'auth',
  // Node-RED runs code from its flows and decrypts credentials with its secret.
  'flows',
  // `memory` would keep nothing across a restart.
  'storage.engine',
  'sync.enabled',
] as const;

/** Keys of a sync link that tune how it sends, not where to or as whom. */
const LINK_TUNING = new Set([
  'role',
  'batchRecords',
  'window',
  'maxBytesPerSecond',
  'ackTimeoutMs',
  'gzipLevel',
  'keepaliveSeconds',
  'reconnectMs',
  'downAfterFailures',
  'messageBytes',
  'downlink.intervalMs',
  'downlink.limit',
  'downlink.maxBackoffMs',
]);

/**
 * Adapter option names that hold a file, a folder, a list of files or a credential
 * (`dropDir`, `templatesDir`, `pointsLists`, `passwordFile`, `tokenHashes`, `authKey`…). Adapters
 * declare no such thing, so the name decides; with the value test below it errs on the side of
 * refusing.
 */
const SENSITIVE_OPTION =
  /(file|files|dir|dirs|directory|list|lists|password|secret|secrets|token|tokens|hash|hashes|key|keys|cert|certs|credential|credentials)$/i;

/** A string that names something on the file system (`/dev/ttyUSB0`, `./drop`, `~/x`, `C:\x`, `file:`). */
function looksLikePath(v: string): boolean {
  return /^(\/|\.\.?[/\\]|~|[A-Za-z]:[/\\]|\\\\|file:)/.test(v);
}

/** JSON with sorted keys: equal values, equal text. */
function stable(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(stable).join(',')}]`;
  const o = value as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${stable(o[k])}`)
    .join(',')}}`;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function at(root: unknown, path: string): unknown {
  let v = root;
  for (const key of path.split('.')) v = isPlainObject(v) ? v[key] : undefined;
  return v;
}

/** Dotted paths of the leaves (arrays count as one leaf) that differ between `a` and `b`. */
function changedLeaves(a: unknown, b: unknown, prefix: string, out: string[]): void {
  // A section added or removed counts key by key (a link's downlink added with tuning keys only).
  if ((isPlainObject(a) || a === undefined) && (isPlainObject(b) || b === undefined) && a !== b) {
    const ka = isPlainObject(a) ? a : {};
    const kb = isPlainObject(b) ? b : {};
    for (const key of new Set([...Object.keys(ka), ...Object.keys(kb)])) changedLeaves(ka[key], kb[key], prefix ? `${prefix}.${key}` : key, out);
    return;
  }
  if (stable(a) !== stable(b)) out.push(prefix);
}

/**
 * The security-sensitive keys `candidate` changes compared with `active`, as schema paths of
 * the candidate (`auth.loopback`, `sync.links.0.url`, `adapters.2.dropDir`); empty when it
 * changes none. Values are never part of the answer (it goes upstream).
 */
export function securityChanges(active: Config, candidate: Config): string[] {
  const changed: string[] = [];
  for (const path of PROTECTED) changedLeaves(at(active, path), at(candidate, path), path, changed);
  linkChanges(active, candidate, changed);
  for (const key of ['enabled', 'restart', 'allowSecurity'] as const) {
    // Turning remote configuration down is always allowed; turning it up is not.
    if (candidate.sync.remoteConfig[key] && !active.sync.remoteConfig[key]) changed.push(`sync.remoteConfig.${key}`);
  }
  adapterChanges(active.adapters, candidate.adapters, changed);
  return changed;
}

/** Links by name: one added or removed, or any key other than the tuning ones changed. */
function linkChanges(active: Config, candidate: Config, changed: string[]): void {
  const before = new Map(active.sync.links.map((l) => [l.name, l]));
  const after = new Set(candidate.sync.links.map((l) => l.name));
  candidate.sync.links.forEach((link, i) => {
    const old = before.get(link.name);
    if (!old) {
      changed.push(`sync.links.${i} (new link "${link.name}")`);
      return;
    }
    const leaves: string[] = [];
    changedLeaves(old, link, '', leaves);
    for (const leaf of leaves) if (!LINK_TUNING.has(leaf)) changed.push(`sync.links.${i}.${leaf}`);
  });
  for (const name of before.keys()) if (!after.has(name)) changed.push(`sync.links (link "${name}" removed)`);
}

/**
 * Per adapter id: the options that name files, folders, devices or credentials, as path → value
 * text, plus `type` and `enabled` when there are any (enabling an entry that reads a folder
 * starts reading it).
 */
function sensitiveOptions(entry: AdapterEntry): Map<string, string> {
  const found = new Map<string, string>();
  const walk = (value: unknown, path: string, key: string): void => {
    if (key !== '' && SENSITIVE_OPTION.test(key)) {
      // An empty list or section (a default) names nothing to read.
      if (stable(value) !== '[]' && stable(value) !== '{}' && value !== '' && value != null) found.set(path, stable(value));
    } else if (typeof value === 'string') {
      if (looksLikePath(value)) found.set(path, stable(value));
    } else if (Array.isArray(value)) {
      for (const [i, v] of value.entries()) walk(v, `${path}.${i}`, '');
    } else if (isPlainObject(value)) for (const [k, v] of Object.entries(value)) walk(v, path ? `${path}.${k}` : k, k);
  };
  walk(entry.options, '', '');
  if (found.size > 0) {
    found.set('type', entry.type);
    found.set('enabled', String(entry.enabled));
  }
  return found;
}

function adapterChanges(active: readonly AdapterEntry[], candidate: readonly AdapterEntry[], changed: string[]): void {
  const before = new Map(active.map((a) => [a.id, sensitiveOptions(a)]));
  const seen = new Set<string>();
  candidate.forEach((entry, i) => {
    seen.add(entry.id);
    const now = sensitiveOptions(entry);
    const old = before.get(entry.id) ?? new Map<string, string>();
    for (const key of new Set([...old.keys(), ...now.keys()])) {
      if (old.get(key) !== now.get(key)) changed.push(`adapters.${i}.${key} (adapter "${entry.id}")`);
    }
  });
  active.forEach((entry) => {
    if (!seen.has(entry.id) && (before.get(entry.id)?.size ?? 0) > 0) changed.push(`adapters (adapter "${entry.id}" removed)`);
  });
}
