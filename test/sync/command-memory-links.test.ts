/**
 * One requestId memory for the whole downlink (issue 26 item 2, "no command applied twice across
 * retries or links"): the Downlink the sync service builds, with its durable memory in a real
 * data folder. A command applied under its requestId (MQTT, HTTP poll) and then its Iridium MT
 * copy, named by the MT counter but carrying the request ref (op 0x05), is applied once — and
 * the other way round; after a "restart" (a new memory and Downlink on the same file) copies are
 * still answered; the per-link memories of before (`commands-<link>.json`) are merged at start.
 */
import t from 'tap';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { Downlink } from '../../runtime/sync/downlink.js';
import { CommandMemory, requestRef } from '../../runtime/sync/command-memory.js';
import { systemClock } from '../../core/clock.js';
import { testLogger } from './helpers/sync.js';
import { tempDir } from '../helpers/teardown.js';

async function open(dir: string, applied: Array<{ id: string; v: unknown }>) {
  const commandMemory = new CommandMemory({ file: join(dir, 'commands.json'), maxIds: 100, clock: systemClock });
  await commandMemory.load();
  const absorbed = await commandMemory.absorbLegacy();
  const downlink = new Downlink({
    commandMemory,
    memory: 100,
    log: testLogger().log,
    clock: systemClock,
    ingest: {
      setpoint: async (id, body) => {
        applied.push({ id, v: (body as { v: unknown }).v });
        return { id, v: (body as { v: unknown }).v, t: Date.now() } as never;
      },
    },
  });
  return { downlink, absorbed };
}

const cmd = (body: Record<string, unknown>, ref?: string) => ({
  source: 'test',
  name: 'setpoint',
  payload: Buffer.from(JSON.stringify(body)),
  ...(ref ? { ref } : {}),
});

t.test('MQTT then its MT copy, MT then its MQTT copy, across a restart: each applied once', async (t) => {
  const dir = await tempDir(t, 'outpost-cmdmem-');
  const applied: Array<{ id: string; v: unknown }> = [];
  let { downlink } = await open(dir, applied);

  const first = await downlink.handle(cmd({ requestId: 'q-1', id: 'pump.sp', v: 10 }), 'mq');
  t.match(first, { requestId: 'q-1', ok: true });
  const mtCopy = await downlink.handle(cmd({ requestId: 'iridium:sat:7.0', id: 'pump.sp', v: 10 }, requestRef('q-1')), 'sat');
  t.match(mtCopy, { requestId: 'iridium:sat:7.0', ok: true }, 'the MT copy is acked under its own name');
  t.same(applied, [{ id: 'pump.sp', v: 10 }], 'MQTT then MT: applied once');

  await downlink.handle(cmd({ requestId: 'iridium:sat:8.0', id: 'pump.sp', v: 20 }, requestRef('q-2')), 'sat');
  t.equal(applied.length, 2, 'the MT command is applied');

  // A restart: a new memory and Downlink on the same file.
  ({ downlink } = await open(dir, applied));
  const mqttCopy = await downlink.handle(cmd({ requestId: 'q-2', id: 'pump.sp', v: 20 }), 'mq');
  t.match(mqttCopy, { requestId: 'q-2', ok: true }, 'the MQTT copy of the MT command after a restart is acked with its requestId');
  const again = await downlink.handle(cmd({ requestId: 'q-1', id: 'pump.sp', v: 10 }), 'up');
  t.match(again, { requestId: 'q-1', ok: true });
  t.equal(applied.length, 2, 'neither copy is applied again after the restart');

  const other = await downlink.handle(cmd({ requestId: 'iridium:sat:9.0', id: 'pump.sp', v: 30 }, requestRef('q-3')), 'sat');
  t.match(other, { ok: true });
  t.equal(applied.length, 3, 'another ref is another command');
});

t.test('the per-link memories of before are merged once at start', async (t) => {
  const dir = await tempDir(t, 'outpost-cmdmem-');
  await mkdir(dir, { recursive: true });
  const ack = { requestId: 'old-1', ok: true, result: { v: 1 }, t: Date.now() };
  await writeFile(
    join(dir, 'commands-mq.json'),
    JSON.stringify({ version: 1, answered: [['old-1', { ack, at: Date.now() }]], applied: [['setpoint:pump.sp', 5]] }),
  );
  const applied: Array<{ id: string; v: unknown }> = [];
  const { downlink, absorbed } = await open(dir, applied);
  t.equal(absorbed, 1, 'one requestId came from commands-mq.json');
  const copy = await downlink.handle(cmd({ requestId: 'iridium:sat:1.0', id: 'pump.sp', v: 1 }, requestRef('old-1')), 'sat');
  t.match(copy, { ok: true });
  t.same(applied, [], 'a command the MQTT link answered before the upgrade is not applied again over MT');
  const merged = JSON.parse(await readFile(join(dir, 'commands.json'), 'utf8')) as { answered: Array<[string, { ref: string }]> };
  t.match(merged.answered, [['old-1', { ref: requestRef('old-1') }]], 'written to the shared file with its ref');
  t.ok(existsSync(join(dir, 'commands-mq.json.merged')) && !existsSync(join(dir, 'commands-mq.json')), 'the old file is read once: renamed .merged');

  await writeFile(join(dir, 'commands-bad.json'), '{not json');
  await t.rejects(open(dir, applied), { code: 'STORAGE_CORRUPT' }, 'an unreadable old memory fails closed, with a clear error');
});
