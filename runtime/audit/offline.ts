import { userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { createLogger } from '../log.js';
import { AuditLog } from './audit-log.js';
import type { AuditInput } from './entry.js';

/** Who runs a command-line tool: the operating-system user (the tools have no login). */
export function cliActor(): AuditInput['actor'] {
  let name = process.env.SUDO_USER ?? process.env.USER ?? 'unknown';
  try {
    name = userInfo().username;
  } catch (err) {
    // A uid without a passwd entry (a container): the environment's name stands.
    if (!(err instanceof Error)) throw err;
  }
  return { kind: 'cli', name };
}

/**
 * Records one entry from a command-line tool run while the gateway is stopped (`outpost
 * restore`): opens `<dataDir>/audit`, appends, closes. Resolves false instead of throwing
 * when the trail cannot be written; the tool's own outcome matters more.
 */
export async function recordOffline(dataDir: string, entry: AuditInput): Promise<boolean> {
  const audit = new AuditLog({ dir: join(resolve(dataDir), 'audit'), log: createLogger({ level: 'warn', pretty: false, destination: process.stderr }) });
  try {
    await audit.open();
    audit.record(entry);
    await audit.close();
    return audit.dropped === 0;
  } catch (err) {
    process.stderr.write(`the audit trail in ${dataDir}/audit was not written: ${(err as Error).message}\n`);
    return false;
  }
}
