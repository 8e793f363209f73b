import { globMatch } from '../../core/glob.js';
/**
 * Topic ACLs for MQTT users. A pattern is an MQTT topic filter (`+` one level, `#` the
 * rest, MQTT 3.1.1 §4.7.1) where a level may also hold a glob of core/glob.ts (`*` any characters
 * inside that one level, `?` one character) and `%u` stands for the username, as in Mosquitto's pattern ACLs:
 *
 *   outpost/dp/meter1.*\/value     a meter publishes only its own datapoints' values
 *   outpost/dp/%u.*\/value         the same, for every device named after its prefix
 */
export interface TopicAcl {
  publish: readonly string[];
  subscribe: readonly string[];
}

/** Full access: users configured without lists, and trusted loopback clients. */
export const ALLOW_ALL: TopicAcl = { publish: ['#'], subscribe: ['#'] };

const PATTERN_LEVEL = /^(#|\+|[^#+]*)$/;

/** Checks a pattern's syntax; returns a reason or undefined when it is fine. */
export function aclPatternProblem(pattern: string): string | undefined {
  if (pattern.length === 0 || pattern.length > 256) return 'expected 1-256 characters';
  const levels = pattern.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!;
    if (!PATTERN_LEVEL.test(level)) return `level "${level}": + and # must be a whole level`;
    if (level === '#' && i !== levels.length - 1) return '# must be the last level';
  }
  return undefined;
}

function expand(pattern: string, username: string): string[] {
  // A username containing wildcards must not widen its own ACL.
  const safe = username.replace(/[+#*?/]/g, '\u0000');
  return pattern.replaceAll('%u', safe).split('/');
}

/** One level of a pattern against one level of a topic: a glob of core/glob.ts (`*` and `?` stay inside the level). */
function globMatches(glob: string, text: string): boolean {
  return globMatch(glob, text, { separator: '/' });
}

/** May a client publish on `topic` (a concrete topic, no wildcards)? */
export function mayPublish(acl: TopicAcl, username: string, topic: string): boolean {
  const t = topic.split('/');
  return acl.publish.some((pattern) => {
    const p = expand(pattern, username);
    for (let i = 0; i < p.length; i++) {
      if (p[i] === '#') return true;
      if (i >= t.length) return false;
      if (p[i] === '+') continue;
      if (!globMatches(p[i]!, t[i]!)) return false;
    }
    return p.length === t.length;
  });
}

/**
 * May a client subscribe to `filter`? Only when every topic the filter can match is
 * also matched by one allowed pattern (the filter is covered), so `#` is never granted
 * to a user who may only read `outpost/dp/+/value`.
 */
export function maySubscribe(acl: TopicAcl, username: string, filter: string): boolean {
  const f = filter.split('/');
  return acl.subscribe.some((pattern) => {
    const p = expand(pattern, username);
    for (let i = 0; i < p.length; i++) {
      if (p[i] === '#') return true;
      if (i >= f.length) return false;
      if (f[i] === '#') return false;
      if (p[i] === '+') continue;
      if (f[i] === '+') return false;
      if (!globMatches(p[i]!, f[i]!)) return false;
    }
    return p.length === f.length;
  });
}
