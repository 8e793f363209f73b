import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnOutpost } from '../helpers/process.js';
import { startTestGateway } from '../helpers/gateway.js';
import type { AuditEntry } from '../../runtime/audit/entry.js';
import { tempDir } from '../helpers/teardown.js';

// From the sources: a dist/ built before the audit trail existed would not write it.
process.env.OUTPOST_TEST_FROM_SOURCE = '1';

async function outpost(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const p = spawnOutpost(args);
  const { code } = await p.exited;
  return { code, stderr: p.stderr() };
}

t.test('outpost restore, run while the gateway is stopped, is in the audit trail with the OS user', async (t) => {
  const dir = await tempDir(t, 'outpost-audit-cli-');
  const source = join(dir, 'a');
  const gw = await startTestGateway(t, { datapoints: [{ id: 'site.temp', kind: 'sensor', type: 'number' }] }, { dataDir: source });
  await gw.gateway.ingest.accept('virtual', 'site.temp', { v: 21.5 });
  await gw.stop();
  const file = join(dir, 'backup.ndjson');
  t.equal((await outpost(['backup', '--data-dir', source, '--out', file])).code, 0);

  const target = join(dir, 'b');
  const restored = await outpost(['restore', '--data-dir', target, file]);
  t.equal(restored.code, 0, restored.stderr);
  const damaged = join(dir, 'damaged.ndjson');
  await writeFile(damaged, (await readFile(file, 'utf8')).split('\n').slice(0, 2).join('\n') + '\n');
  t.not((await outpost(['restore', '--data-dir', target, damaged])).code, 0);

  const entries = (await readFile(join(target, 'audit', 'audit.jsonl'), 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as AuditEntry);
  t.equal(entries.length, 2);
  t.match(entries[0], { action: 'backup.restore', actor: { kind: 'cli', name: String }, outcome: 'ok', details: { file } });
  t.match(entries[0]!.by, /^cli:/);
  t.match(entries[1], { action: 'backup.restore', outcome: 'refused', error: { code: 'BACKUP_INVALID' }, details: { file: damaged } });
});
