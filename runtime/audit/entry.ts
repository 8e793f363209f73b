import type { AuditActor } from './actor.js';

export type AuditOutcome = 'ok' | 'refused';

/** What a caller records: who did what to which target, and how it ended. */
export interface AuditInput {
  /** `setpoint`, `charger.command`, `user.add`, `token.revoke`, `flows.deploy`, `backup.restore`, … */
  action: string;
  actor: AuditActor;
  /** What was acted on: a datapoint id, a charger, a username, a token id. */
  target?: string;
  /** The values (a setpoint's `v`, a new role); secrets are dropped before anything is kept. */
  details?: Record<string, unknown>;
  outcome: AuditOutcome;
  error?: { code: string; message: string };
  /** The client address, where the command came over the network. */
  address?: string;
}

/** One line of the audit files, as the API returns it. */
export interface AuditEntry extends AuditInput {
  /** Increasing across restarts and rotations (the API pages with `before`). */
  id: number;
  t: number;
  /** The actor as text (`user alice`), so the files read well with grep and jq. */
  by: string;
  /** Refusals of the same actor and action not recorded just before this one (RefusalLimiter). */
  suppressedBefore?: number;
}

/** What the hooks (ingest, auth, backup, adapters) depend on; the AuditLog is one. */
export interface AuditSink {
  /** Never throws and never waits: a failed write is counted and logged, not the caller's problem. */
  record(input: AuditInput): void;
}
