import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { startTestGateway, eventually } from '../helpers/gateway.js';
import { spawnOutpost, type OutpostProcess } from '../helpers/process.js';
import { tempDir } from '../helpers/teardown.js';
import { Mosquitto } from '../sync/helpers/mosquitto.js';
import { hashToken } from '../../central/gateways.js';
import { API_TOKEN, API_TOKEN_HASH, startTestCentral } from './helpers.js';

const GW = 'site-mqtt';
const IDS = ['a.power', 'a.energy', 'b.temp', 'b.flow', 'c.level'];
const RECEIVER_TOKEN = 'receiver-b-token-0123456789abcdef';
const T0 = Date.UTC(2025, 6, 1);

/** `outpost_central_ingest_requests_total{path="mqtt",outcome=…}` of a central, by outcome. */
async function mqttOutcomes(url: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${API_TOKEN}` } })).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^outpost_central_ingest_requests_total\{path="mqtt",outcome="([^"]+)"\} (\d+)$/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

t.test(
  'a real gateway → Mosquitto → two receivers on one shared subscription → the level store: every reading once, through a receiver SIGKILL and a broker restart',
  async (t) => {
    const broker = await Mosquitto.create(t);
    // Receiver A: the central that owns the store, with its own MQTT receiver (in this process).
    const central = await startTestCentral(t, {
      ingest: {
        http: { receiverTokens: [hashToken(RECEIVER_TOKEN)] },
        mqtt: { url: broker.url, clientId: 'central-a', reconnectMs: 200 },
      },
      gateways: [{ id: GW }],
    });
    const store = central.store!;
    // Receiver B: `outpost central` as a child process, forwarding to A (the store has one owner).
    const dir = await tempDir(t, 'outpost-central-b-');
    const yaml = join(dir, 'receiver-b.yaml');
    await writeFile(
      yaml,
      `id: receiver-b
database: ${central.url}
forward: { token: ${RECEIVER_TOKEN} }
log: { level: info }
http: { host: 127.0.0.1, port: 0, tokens: ["${API_TOKEN_HASH}"] }
ingest:
  mqtt: { url: ${broker.url}, clientId: central-b, reconnectMs: 200 }
`,
    );
    const children: OutpostProcess[] = [];
    const startB = async (): Promise<string> => {
      const p = spawnOutpost(['central', '-c', yaml]);
      children.push(p);
      const url = await p.ready;
      await eventually(async () => (await fetch(`${url}/healthz`)).status === 200, 30_000, 100);
      return url;
    };
    t.teardown(async () => {
      for (const p of children) {
        if (p.child.exitCode === null && p.child.signalCode === null) {
          p.child.kill('SIGTERM');
          await p.exited;
        }
      }
    });
    let urlB = await startB();

    const gw = await startTestGateway(t, {
      gateway: { id: GW },
      storage: { sync: false },
      datapoints: IDS.map((id) => ({ id, kind: 'sensor', type: 'number' })),
      sync: {
        enabled: true,
        pollMs: 20,
        datapointsIntervalMs: 0,
        backoff: { initialMs: 50, maxMs: 300 },
        // Reconnecting after the receivers (200 ms), as the defaults do (2 s against 1 s): Mosquitto
        // 2.0.11 acknowledges and drops what is published to a shared subscription after its
        // restart until a member subscribes again (central/README.md, MQTT).
        links: [{ name: 'central', type: 'mqtt', url: broker.url, reconnectMs: 1500, batchRecords: 40, window: 8, ackTimeoutMs: 5000 }],
      },
    });
    // A steady stream: 25 readings every 25 ms over five datapoints (~1,000 a second).
    let n = 0;
    let feeding = true;
    const feed = async (): Promise<void> => {
      while (feeding) {
        const points = Array.from({ length: 25 }, () => {
          const i = n++;
          return { id: IDS[i % IDS.length]!, v: i % 2 ? i / 8 : i, t: T0 + i * 100 };
        });
        await gw.gateway.ingest.acceptMany('test', points);
        await new Promise((r) => setTimeout(r, 25));
      }
    };
    const feeder = feed();
    t.teardown(async () => {
      feeding = false;
      await feeder;
    });
    const stored = () => store.countSeqs(GW);

    // Both receivers take part.
    await eventually(async () => (await mqttOutcomes(urlB)).ok > 5 && (central.receiver?.counts.committed ?? 0) > 5, 60_000, 100);
    t.pass('both receivers committed batches');

    // ---- SIGKILL receiver B mid-stream ----
    const b = children.at(-1)!;
    b.child.kill('SIGKILL');
    await b.exited;
    const atKill = await stored();
    await eventually(async () => (await stored()) > atKill + 1000, 60_000, 100);
    t.pass('A keeps storing while B is dead');
    // B comes back under the same client id: its session (and what was in flight to it) resumes.
    urlB = await startB();
    await eventually(async () => (await mqttOutcomes(urlB)).ok > 0, 60_000, 100);
    t.pass('B, restarted, commits again');

    // ---- broker restart mid-stream ----
    const atRestart = await stored();
    await broker.restart(300);
    await eventually(async () => (await stored()) > atRestart + 1000, 60_000, 100);
    t.pass('storing goes on after the broker restart');

    // ---- stop the stream; everything arrives ----
    feeding = false;
    await feeder;
    const drainFrom = Date.now();
    const lastSeq = gw.gateway.store.stats().lastSeq;
    // On a stall, say where: what is missing, who is connected, what the broker and B said.
    const explainStall = async (): Promise<string> => {
      const snap = await gw.gateway.sync!.snapshot();
      const have = new Set<number>();
      for (const id of IDS) for (const v of await store.query(GW, id, { from: T0, to: T0 + n * 100, limit: 100_000 })) have.add((v.t - T0) / 100);
      const missing: Array<[number, number]> = [];
      for (let i = 0; i < n; i++) {
        if (have.has(i)) continue;
        const last = missing.at(-1);
        if (last && last[1] === i - 1) last[1] = i;
        else missing.push([i, i]);
      }
      return JSON.stringify({
        stored: await stored(),
        lastSeq,
        acked: gw.gateway.store.stats().ackedSeq,
        backlog: snap.backlogRecords,
        links: snap.links.map((l) => `${l.name}:${l.state}:${l.lastError ?? ''}`),
        missingReadings: missing.slice(0, 20),
        marks: { atKill, atRestart },
        a: { connected: central.receiver?.connected, ...central.receiver?.counts },
        b: { health: (await fetch(`${urlB}/healthz`)).status, outcomes: await mqttOutcomes(urlB) },
        brokerLog: broker.log.slice(-1000),
        bOut: children.at(-1)!.stdout().slice(-2000),
      });
    };
    try {
      await eventually(async () => (await stored()) >= lastSeq && gw.gateway.store.stats().ackedSeq >= lastSeq, 90_000, 200);
    } catch (err) {
      t.comment(await explainStall());
      throw err;
    }
    t.comment(`drained ${lastSeq} seqs in ${Date.now() - drainFrom} ms after the stream stopped`);
    t.equal(await stored(), lastSeq, `every outbox seq stored once (${lastSeq})`);
    t.equal(await store.countReadings(GW), n, `${n} readings at central`);
    for (const id of IDS) {
      const site = await gw.gateway.store.query(id, { from: T0, to: T0 + n * 100, limit: 100_000 });
      const atCentral = await store.query(GW, id, { from: T0, to: T0 + n * 100, limit: 100_000 });
      t.equal(atCentral.length, site.length, `${id}: ${site.length} readings, each once`);
      t.same(atCentral, site, `${id}: the same readings as on the site`);
    }
    // ---- bad input on the shared topics: acknowledged, dropped, not redelivered for ever ----
    const before = [await mqttOutcomes(central.url), await mqttOutcomes(urlB)];
    const bad = await mqtt.connectAsync(broker.url, { clientId: 'bad-publisher' });
    await bad.publishAsync(`sites/${GW}/data`, Buffer.from('this is no batch'), { qos: 1 });
    await bad.publishAsync(
      'sites/nobody/data',
      Buffer.from(JSON.stringify({ format: 1, gw: 'nobody', key: 'nobody:1-1', first: 1, last: 1, lane: 'history', records: [[1, 'x', T0, 1]] })),
      {
        qos: 1,
      },
    );
    await bad.endAsync();
    const refusals = async (): Promise<Record<string, number>> => {
      const now = [await mqttOutcomes(central.url), await mqttOutcomes(urlB)];
      const out: Record<string, number> = {};
      for (const [i, m] of now.entries()) for (const [k, v] of Object.entries(m)) if (k !== 'ok') out[k] = (out[k] ?? 0) + v - (before[i]![k] ?? 0);
      return Object.fromEntries(Object.entries(out).filter(([, v]) => v !== 0));
    };
    await eventually(async () => Object.values(await refusals()).reduce((x, y) => x + y, 0) >= 2, 20_000, 100);
    await new Promise((r) => setTimeout(r, 1500));
    t.same(await refusals(), { CENTRAL_BATCH_INVALID: 1, CENTRAL_GATEWAY_UNKNOWN: 1 }, 'each refused once, with its code: acknowledged, not redelivered');

    t.same(
      (await store.datapoints()).map((d) => d.gateway),
      IDS.map(() => GW),
      'nothing stored for the unknown gateway',
    );
    const state = await store.gatewayState(GW);
    // The gateway's will (offline, session n) and its next online status (session n+1) may go to
    // different members of the shared subscription after the broker restart and be committed in
    // either order: the store keeps the newest session's (central/store/contract.ts GatewayStatus).
    t.equal(state?.status?.state, 'online', 'the connected gateway is online: its newest session’s status');
    t.ok((state?.status?.session ?? 0) > 0, 'the status names its session');
    t.equal(state?.lastVia, 'mqtt');
    t.comment(`${n} readings in ${lastSeq} seqs; A committed ${central.receiver?.counts.committed} messages, retried ${central.receiver?.counts.retried}`);
  },
);
