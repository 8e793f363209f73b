import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startTestGateway, eventually } from '../helpers/gateway.js';
import { spawnOutpost, processYamlHead } from '../helpers/process.js';
import { localApi } from '../helpers/local-api.js';
import { Mosquitto } from './helpers/mosquitto.js';
import { Receiver, inOrderPerDatapoint } from './helpers/receiver.js';
import { sensors, writeReadings } from './helpers/sync.js';
import { mulberry32 } from '../helpers/rng.js';
import type { SyncSnapshot } from '../../runtime/sync/service.js';
import { tempDir } from '../helpers/teardown.js';

const GW = 'gw-capped';
const IDS = ['plant.m1.power', 'plant.m2.power', 'yard.temp'];
const N = 10_000;
const BATCH = 100;
const WINDOW = 16;
/** ~900 B per gzip'd batch of 100 here: about 4 batches (400 records) a second. */
const CAP = 3600;
const KILLS = 5;
/** Records the receiver must have gained in a run before it is killed (12 batches: under one window). */
const PER_RUN = 1200;

t.test('a bandwidth-capped link takes acknowledgements as they come: SIGKILLs of the real process resend little', async (t) => {
  const broker = await Mosquitto.create(t);
  const receiver = await Receiver.connect(t, broker.url, { clientId: 'central-capped', clean: false });
  const dir = await tempDir(t, 'outpost-capped-');
  const dataDir = join(dir, 'data');

  // The backlog: written by the gateway in-process (sync off), then drained by the real process.
  const seed = await startTestGateway(t, { gateway: { id: GW }, datapoints: sensors(IDS) }, { dataDir });
  await writeReadings(seed, IDS, N, Date.UTC(2025, 0, 1));
  await seed.stop();

  const config = join(dir, 'outpost.yaml');
  await writeFile(
    config,
    `${processYamlHead({ id: GW, dataDir })}datapoints:
${IDS.map((id) => `  - { id: ${id}, kind: sensor, type: number }`).join('\n')}
sync:
  enabled: true
  pollMs: 20
  datapointsIntervalMs: 0
  live: { enabled: false }
  links:
    - { name: central, type: mqtt, url: '${broker.url}', reconnectMs: 100, batchRecords: ${BATCH}, window: ${WINDOW}, maxBytesPerSecond: ${CAP} }
`,
  );
  const api = localApi(dataDir);
  const maxSeq = (): number => receiver.records.reduce((m, r) => Math.max(m, r.seq), 0);

  /** Duplicates the receiver saw during each run: what the kill before it made the gateway send again. */
  const resentAfterKill: number[] = [];
  const random = mulberry32(19);
  const lagAtKill: number[] = [];
  for (let run = 0; run <= KILLS; run++) {
    const before = { dups: receiver.duplicates, records: receiver.records.length };
    const proc = spawnOutpost(['start', '-c', config]);
    t.teardown(() => {
      if (proc.child.exitCode === null) proc.child.kill('SIGKILL');
    });
    await proc.ready;
    if (run === KILLS) {
      await eventually(() => receiver.records.length === N, 60_000, 50);
      // The last run's own resends (after the last kill) are done once everything is there.
      resentAfterKill.push(receiver.duplicates - before.dups);
      const snap = await eventually(async () => {
        const s = (await (await api('/api/sync')).json()) as SyncSnapshot;
        return s.backlogRecords === 0 ? s : undefined;
      }, 10_000);
      t.equal(snap!.acked, N, 'drained to the end');
      proc.child.kill('SIGTERM');
      await proc.exited;
      break;
    }
    await eventually(() => receiver.records.length >= Math.min(N, before.records + PER_RUN), 60_000, 20);
    // Anywhere between two batches (~250 ms apart), not just after one arrived.
    await new Promise((r) => setTimeout(r, Math.floor(random() * 300)));
    // What the gateway says it has acknowledged, against what the receiver has, right before the kill.
    const snap = (await (await api('/api/sync')).json()) as SyncSnapshot;
    lagAtKill.push(maxSeq() - snap.acked);
    proc.child.kill('SIGKILL');
    t.equal((await proc.exited).signal, 'SIGKILL');
    if (run > 0) resentAfterKill.push(receiver.duplicates - before.dups);
  }

  t.same(
    receiver.records.map((r) => r.seq),
    Array.from({ length: N }, (_, i) => i + 1),
    'every record once after dedupe, in order',
  );
  t.notOk(inOrderPerDatapoint(receiver.records));
  const total = resentAfterKill.reduce((a, b) => a + b, 0);
  t.comment(
    `records resent after each of ${KILLS} kills: ${resentAfterKill.join(', ')} (total ${total}; one window is ${WINDOW * BATCH}); cursor lag at each kill: ${lagAtKill.join(', ')}`,
  );
  t.equal(resentAfterKill.length, KILLS);
  // Resent after a kill: what was delivered and not yet durably acknowledged. With acks taken
  // as they arrive that is the batch on the wire and an fsync or two, not the window.
  for (const [i, n] of resentAfterKill.entries()) t.ok(n <= 3 * BATCH, `kill ${i + 1}: ${n} records resent (≤ 3 batches; one window is ${WINDOW * BATCH})`);
  for (const [i, lag] of lagAtKill.entries()) t.ok(lag <= 3 * BATCH, `kill ${i + 1}: /api/sync acknowledged up to ${lag} records behind the receiver`);
});
