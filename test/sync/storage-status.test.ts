/**
 * Issue 19, part 1: when storage goes read-only the alarm also goes upstream, on the MQTT
 * link's retained `<root>/status` (the outbox cannot carry it: it is in the storage that
 * refuses writes), and clears when storage recovers. Mosquitto upstream, a plain MQTT client
 * as the central side; the write failure is injected into the real LevelDB of the gateway.
 * The HTTP link has no connection to hold a status: it POSTs status documents.
 */
import t from 'tap';
import mqtt from 'mqtt';
import { createServer } from 'node:http';
import { signBody, SIGNATURE_HEADER, TIMESTAMP_HEADER } from '../../runtime/sync/http-link.js';
import { startTestGateway, eventually } from '../helpers/gateway.js';
import { Mosquitto } from './helpers/mosquitto.js';
import { failCommits } from '../helpers/storage-faults.js';
import type { LevelStore } from '../../storage/level/level-store.js';

t.test('storage read-only and recovered, as the central side sees it on the status topic', async (t) => {
  const broker = await Mosquitto.create(t);
  const gw = await startTestGateway(t, {
    gateway: { id: 'gw-st' },
    datapoints: [{ id: 'a.x', kind: 'sensor', type: 'number' }],
    sync: { enabled: true, links: [{ name: 'central', type: 'mqtt', url: broker.url, reconnectMs: 100 }] },
  });
  const central = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
  t.teardown(() => central.endAsync(true));
  const statuses: Array<{ state: string; storage?: { state: string; error?: string } }> = [];
  central.on('message', (_topic, payload) => statuses.push(JSON.parse(payload.toString('utf8'))));
  await central.subscribeAsync('sites/gw-st/status', { qos: 1 });
  await eventually(() => statuses.some((s) => s.state === 'online'), 10_000);
  t.notOk(statuses.at(-1)!.storage, 'online, storage fine: no storage field');

  // The next batch write fails, as on a full disk.
  failCommits(gw.gateway.store as LevelStore, { once: true });
  await t.rejects(gw.gateway.store.write([{ id: 'a.x', t: Date.now(), v: 1 }]));
  const alarm = await eventually(() => statuses.find((s) => s.storage?.state === 'read-only'), 5_000);
  t.match(alarm, { state: 'online', storage: { state: 'read-only', error: /No space left on device/ } }, 'the read-only alarm goes upstream at once');
  await eventually(() => statuses.length > 0 && statuses.at(-1)!.storage === undefined && statuses.indexOf(alarm!) < statuses.length - 1, 15_000);
  t.pass('after the reopen the status says storage is fine again');
  await gw.gateway.store.write([{ id: 'a.x', t: Date.now(), v: 2 }]);
  t.equal(gw.gateway.store.latest('a.x')?.v, 2, 'and writes go through');
});

t.test('HTTP link: the storage alarm and its recovery POSTed as status documents, signed, retried after a failure', async (t) => {
  const statuses: Array<{ format: string; gw: string; storage: { state: string; error?: string } }> = [];
  let refuseNext = 1; // the first status document meets a 503: it is sent again
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (signBody('s3cret-0123456789abcdef', String(req.headers[TIMESTAMP_HEADER]), body) !== req.headers[SIGNATURE_HEADER]) return res.writeHead(401).end();
      if (req.headers['x-outpost-lane'] !== 'status') return res.writeHead(200).end('{}'); // batches
      if (refuseNext-- > 0) return res.writeHead(503).end('busy');
      statuses.push(JSON.parse(body.toString('utf8')));
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/ingest`;
  const gw = await startTestGateway(t, {
    gateway: { id: 'gw-hs' },
    datapoints: [{ id: 'a.x', kind: 'sensor', type: 'number' }],
    sync: { enabled: true, links: [{ name: 'central', type: 'http', url, auth: { type: 'hmac', secret: 's3cret-0123456789abcdef' } }] },
  });
  failCommits(gw.gateway.store as LevelStore, { once: true });
  await t.rejects(gw.gateway.store.write([{ id: 'a.x', t: Date.now(), v: 1 }]));
  const alarm = await eventually(() => statuses.find((s) => s.storage.state === 'read-only'), 10_000);
  t.match(
    alarm,
    { format: 'outpost-status/1', gw: 'gw-hs', storage: { state: 'read-only', error: /No space left on device/ } },
    'the read-only alarm reaches the receiver after one 503',
  );
  await eventually(() => statuses.at(-1)?.storage.state === 'ok', 20_000);
  t.pass('and the recovery after the reopen');
  t.equal(statuses.length, 2, 'one document per change');
});
