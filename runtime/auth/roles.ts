/**
 * Roles, from least to most trusted (issue 10): a viewer reads, an operator also writes
 * setpoints and controls chargers, an admin also manages users, tokens, config and flows.
 */
export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

/** True when `role` may do what `needed` may do. */
export function roleAtLeast(role: Role, needed: Role): boolean {
  return RANK[role] >= RANK[needed];
}

/** Who made a request: a logged-in user, a machine token, or a trusted tool on this host. */
export interface Principal {
  kind: 'session' | 'token' | 'loopback';
  /** Username, token name, or "loopback". */
  name: string;
  role: Role;
  /** Present for sessions: the id the cookie carries and its CSRF token. */
  sessionId?: string;
  csrf?: string;
}
