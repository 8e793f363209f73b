import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SparkplugSession, sparkplugCodec, type SparkplugMessage } from '../../runtime/sync/sparkplug.js';
import { BdSeqCounter } from '../../runtime/sync/sparkplug-bdseq.js';
import { createLogger } from '../../runtime/log.js';
import { tempDir } from '../helpers/teardown.js';

const log = createLogger({ level: 'silent', pretty: false });
const decode = (m: SparkplugMessage) => sparkplugCodec.decodePayload(m.payload);
const kinds = (list: SparkplugMessage[]) => list.map((m) => `${m.kind}${m.topic.split('/')[4] ? `/${m.topic.split('/')[4]}` : ''}`);
let seq = 0;
const rec = (id: string, v: unknown, at: number) => ({ seq: ++seq, id, v: v as number, t: at });

t.test('a batch with a new node metric and a new device: one NBIRTH, one DBIRTH per device', async (t) => {
  const s = new SparkplugSession('g', 'n', () => 1000);
  s.learn([{ id: 'plant.m1', v: 1, t: 10 }]);
  t.same(kinds(s.birth()), ['NBIRTH', 'DBIRTH/plant']);
  const out = s.encode([rec('uptime', 5, 20), rec('tank.level', 0.5, 20), rec('plant.m1', 2, 20)], 'k');
  t.same(
    kinds(out),
    ['NBIRTH', 'DBIRTH/plant', 'DBIRTH/tank', 'NDATA', 'DDATA/tank', 'DDATA/plant'],
    'the full rebirth covers the new device: no second DBIRTH',
  );
  t.same(
    out.map((m) => Number(decode(m).seq)),
    [0, 1, 2, 3, 4, 5],
  );
  // A device gaining a metric is born again, alone.
  t.same(kinds(s.encode([rec('plant.m2', 7, 30)], 'k2')), ['DBIRTH/plant', 'DDATA/plant']);
});

t.test('is_historical: readings older than what the host has are flagged and leave the current value', async (t) => {
  const s = new SparkplugSession('g', 'n', () => 1000);
  s.learn([{ id: 'plant.m1', v: 9, t: 100 }]);
  const [, dbirth] = s.birth();
  t.match(decode(dbirth!).metrics, [{ name: 'm1', value: 9 }], 'birth carries the current value');
  const [ddata] = s.encode([rec('plant.m1', 1, 50), rec('plant.m1', 2, 60), rec('plant.m1', 9, 100), rec('plant.m1', 10, 110), rec('plant.m1', 3, 70)], 'k');
  const metrics = decode(ddata!).metrics!.map((m) => ({ v: m.value, t: Number(m.timestamp), h: m.isHistorical === true }));
  t.same(metrics, [
    { v: 1, t: 50, h: true },
    { v: 2, t: 60, h: true },
    { v: 9, t: 100, h: false },
    { v: 10, t: 110, h: false },
    { v: 3, t: 70, h: true },
  ]);
  // The next birth (rebirth) carries the newest, not the last replayed.
  t.match(decode(s.birth()[1]!).metrics, [{ name: 'm1', value: 10 }]);
});

t.test('a metric first seen null takes its type from a historical value too, declared in a DBIRTH', async (t) => {
  const s = new SparkplugSession('g', 'n', () => 1000);
  s.learn([{ id: 'plant.m1', v: null, t: 100 }]);
  s.birth();
  const out = s.encode([rec('plant.m1', 4, 50)], 'k');
  t.same(kinds(out), ['DBIRTH/plant', 'DDATA/plant']);
  t.match(decode(out[0]!).metrics, [{ name: 'm1', type: 'Double' }]);
  t.match(decode(out[1]!).metrics, [{ name: 'm1', value: 4, isHistorical: true }]);
});

t.test('bdSeq: persisted, one per connection that reached the server, wraps at 255', async (t) => {
  const dir = await tempDir(t, 'outpost-bdseq-');
  const file = join(dir, 'sync', 'sparkplug-x.json');
  const c = new BdSeqCounter(file, log);
  await c.load();
  t.equal(c.value, 0, 'fresh: 0');
  // Attempts that never got a connection or were refused use none up.
  t.equal(c.connectionClosed(), false);
  c.connectSent();
  c.connectRefused();
  t.equal(c.connectionClosed(), false);
  t.equal(c.value, 0);
  c.connectSent();
  await c.persisted();
  t.same(JSON.parse(await readFile(file, 'utf8')), { bdSeq: 0 }, 'written before the NBIRTH');
  t.equal(c.connectionClosed(), true);
  t.equal(c.value, 1);

  const again = new BdSeqCounter(file, log);
  await again.load();
  t.equal(again.value, 1, 'a restart continues after the last used one');

  await writeFile(file, JSON.stringify({ bdSeq: 255 }));
  const wrap = new BdSeqCounter(file, log);
  await wrap.load();
  t.equal(wrap.value, 0, '255 wraps to 0');

  await writeFile(file, JSON.stringify({ bdSeq: 300 }));
  await t.rejects(
    new BdSeqCounter(file, log).load(),
    { code: 'STORAGE_OPEN_FAILED', message: /0-255/ },
    'an out-of-range bdSeq is an error, not a silent reset',
  );
  await writeFile(file, '{not json');
  await t.rejects(new BdSeqCounter(file, log).load(), { code: 'STORAGE_OPEN_FAILED' }, 'so is a damaged file');
});
