import { refused } from './audit-log.js';
import type { AuditInput, AuditSink } from './entry.js';

/**
 * Runs a command and records it with its outcome: `ok` when `run` resolves (plus details
 * taken from its result by `more`, e.g. the id of a created token), `refused` with the error
 * code when it throws; the error is thrown on unchanged. Without a sink it only runs.
 */
export async function audited<T>(
  sink: AuditSink | undefined,
  entry: Omit<AuditInput, 'outcome' | 'error'>,
  run: () => Promise<T> | T,
  more?: (result: T) => Record<string, unknown>,
): Promise<T> {
  let result: T;
  try {
    result = await run();
  } catch (err) {
    sink?.record({ ...entry, ...refused(err) });
    throw err;
  }
  const extra = more?.(result);
  sink?.record(extra ? { ...entry, details: { ...entry.details, ...extra }, outcome: 'ok' } : { ...entry, outcome: 'ok' });
  return result;
}

/** What flows/node-red.ts reports about an admin's change request (its FlowChangeEvent). */
export interface FlowChange {
  user: string;
  ok: boolean;
  status: number;
  method: string;
  path: string;
}

/**
 * A flow change as an audit entry: a POST to the admin API's `/flows` is a deploy, anything
 * else (an inject button, a node install, a flow of its own) a `flows.change` with its path.
 * The event names the login, not its kind, so a token reads as a user here.
 */
export function flowChangeEntry(event: FlowChange): AuditInput {
  const deploy = event.method === 'POST' && /\/flows\/?$/.test(event.path);
  return {
    action: deploy ? 'flows.deploy' : 'flows.change',
    actor: { kind: 'user', name: event.user },
    target: event.path,
    details: { method: event.method, status: event.status },
    ...(event.ok
      ? { outcome: 'ok' as const }
      : { outcome: 'refused' as const, error: { code: `HTTP_${event.status}`, message: `the flows API answered ${event.status}` } }),
  };
}
