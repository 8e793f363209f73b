/**
 * Fleet scale (issue 8, "Scale beyond one gateway"): G gateways, each a real in-process
 * `Gateway` (LevelDB store, ingest, local bus, HTTP) with its own `SyncService` MQTT
 * link, against ONE real Mosquitto on loopback. The central receiver runs in a worker
 * thread (its own event loop, as a separate service would) subscribed to `sites/+/data`,
 * and stores each record once per (gateway id, seq) with the codec's `SeqDeduper`.
 *
 *   node --import tsx bench/sync-scale.bench.ts              # 50 gateways in ONE process (2 cores / 1 GB), ~1 min
 *   BENCH_BIG=1 node --import tsx bench/sync-scale.bench.ts  # 100 gateways, deeper backlog, longer live phase
 *   BENCH_GATEWAYS=, BENCH_BACKLOG= (per gateway), BENCH_LIVE_SECONDS= override either.
 *
 * Phases, one run:
 *  0. solo: ONE gateway of the same build drains BENCH_SOLO_BACKLOG records alone to the same
 *     broker and receiver: the single-gateway rate the fleet is compared with.
 *  1. fleet: every gateway has BENCH_BACKLOG readings of 20 datapoints in its outbox (written
 *     through `ingest.acceptMany` while sync was off, as after a central-side outage); all
 *     SyncServices start at once while every gateway also ingests its 20 datapoints every
 *     100 ms (live ingest during catch-up) → aggregate backlog records/s until the receiver held
 *     every gateway's 1..BACKLOG, per-gateway min/max, ratio to the solo rate.
 *  2. live: ingest goes on BENCH_LIVE_SECONDS after catch-up → measurement → receiver latency.
 *  3. peer: the very payload bytes captured in phase 1 are published again by one bare
 *     MQTT.js client per gateway (QoS 1, the same in-flight window) to `peer/<gw>/data`,
 *     received and decoded by the same receiver: Mosquitto's own ingest rate for the same
 *     bytes and topology.
 * Then: per gateway, records stored after dedupe == records written, ranges == [[1, N]],
 * no foreign idempotency keys, no out-of-order record per datapoint. Exits 1 otherwise.
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import mqtt from 'mqtt';
import { decodeBatch } from '../runtime/sync/codec.js';
import { SitesReceiver, percentile, type SiteTally } from '../test/sync/helpers/sites-receiver.js';

interface ReceiverReport {
  sites: Record<string, SiteTally>;
  latencies: number[];
  malformed: number;
  peerRecords: number;
  peerLastAt: number;
}

type ToReceiver =
  | { type: 'prefixTarget'; n: number }
  | { type: 'latencyFrom'; t: number }
  | { type: 'report' }
  | { type: 'payloads'; gateway: string }
  | { type: 'capture'; on: boolean }
  | { type: 'close' };

if (!isMainThread) {
  // ---- the central side, in its own thread ----
  const receiver = await SitesReceiver.connect((workerData as { url: string }).url, {}, ['sites/+/data', 'peer/+/data']);
  receiver.capture = true;
  parentPort!.on('message', async (m: ToReceiver) => {
    if (m.type === 'prefixTarget') receiver.prefixTarget = m.n;
    else if (m.type === 'latencyFrom') receiver.latencyFrom = m.t;
    else if (m.type === 'capture') receiver.capture = m.on;
    else if (m.type === 'report') {
      const sites: Record<string, SiteTally> = {};
      for (const gw of receiver.gateways()) sites[gw] = receiver.tally(gw);
      const report: ReceiverReport = {
        sites,
        latencies: receiver.latencies,
        malformed: receiver.malformed,
        peerRecords: receiver.peerRecords,
        peerLastAt: receiver.peerLastAt,
      };
      parentPort!.postMessage({ type: 'report', report });
    } else if (m.type === 'payloads') {
      // Copied, not transferred: MQTT.js payloads can be views into one shared socket buffer.
      const payloads = receiver.takePayloads(m.gateway).map((p) => new Uint8Array(p));
      parentPort!.postMessage({ type: 'payloads', gateway: m.gateway, payloads });
    } else if (m.type === 'close') {
      await receiver.close();
      parentPort!.postMessage({ type: 'closed' });
    }
  });
  parentPort!.postMessage({ type: 'ready' });
} else {
  await main();
}

async function main(): Promise<void> {
  const { Mosquitto } = await import('../test/sync/helpers/mosquitto.js');
  const { startFleetGateway } = await import('../test/sync/helpers/fleet.js');
  type FleetGateway = Awaited<ReturnType<typeof startFleetGateway>>;

  const BIG = process.env.BENCH_BIG === '1';
  const GATEWAYS = Number(process.env.BENCH_GATEWAYS ?? (BIG ? 100 : 50));
  const BACKLOG = Number(process.env.BENCH_BACKLOG ?? (BIG ? 40_000 : 4_000));
  const LIVE_SECONDS = Number(process.env.BENCH_LIVE_SECONDS ?? (BIG ? 60 : 5));
  const SOLO_BACKLOG = Number(process.env.BENCH_SOLO_BACKLOG ?? (BIG ? 200_000 : 50_000));
  const DATAPOINTS = 20;
  const LIVE_INTERVAL_MS = 100;
  const WINDOW = 16;
  const BATCH = 2000;
  const T0 = Date.UTC(2025, 0, 1);
  const mb = (n: number): string => `${(n / 1024 / 1024).toFixed(0)} MB`;
  const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

  const teardowns: Array<() => unknown> = [];
  const broker = await Mosquitto.create({ teardown: (fn) => teardowns.push(fn) });
  const worker = receiverWorker(broker.url);
  const replies: Array<(m: { type: string; [k: string]: unknown }) => void> = [];
  worker.on('message', (m) => replies.shift()?.(m));
  worker.on('error', (err) => {
    console.error('receiver worker failed:', err);
    process.exit(1);
  });
  const ask = <T>(m: ToReceiver | null): Promise<T> =>
    new Promise<T>((resolve) => {
      replies.push(resolve as (m: unknown) => void);
      if (m) worker.postMessage(m);
    });
  await ask(null); // ready
  const report = async (): Promise<ReceiverReport> => (await ask<{ report: ReceiverReport }>({ type: 'report' })).report;

  const fleet: FleetGateway[] = [];
  let failed = false;
  try {
    const rss0 = process.memoryUsage().rss;
    let t0 = performance.now();
    for (let i = 0; i < GATEWAYS; i++) fleet.push(await startFleetGateway(`gw-${String(i).padStart(3, '0')}`, { datapoints: DATAPOINTS }));
    const rssFleet = process.memoryUsage().rss;
    console.log(
      `fleet:   ${GATEWAYS} gateways started in ${((performance.now() - t0) / 1000).toFixed(1)} s; RSS ${mb(rss0)} → ${mb(rssFleet)} (${mb((rssFleet - rss0) / GATEWAYS)} per gateway, in one process)`,
    );

    const linkConfig = {
      pollMs: 50,
      datapointsIntervalMs: 0,
      links: [{ name: 'central', type: 'mqtt', url: broker.url, batchRecords: BATCH, window: WINDOW, reconnectMs: 200 }],
    };
    const waitFor = async (done: (r: ReceiverReport) => boolean, ms: number): Promise<ReceiverReport> => {
      const until = Date.now() + ms;
      let rep = await report();
      while (!done(rep) && Date.now() < until) {
        await new Promise((res) => setTimeout(res, 100));
        rep = await report();
      }
      return rep;
    };

    // ---- 0. peer in the same run: ONE gateway draining alone (same code, same broker) ----
    const solo = await startFleetGateway('solo', { datapoints: DATAPOINTS });
    let soloRate = 0;
    try {
      await solo.writeBacklog(SOLO_BACKLOG, T0);
      const soloStart = Date.now();
      await solo.startSync(linkConfig);
      const sr = await waitFor((rep) => (rep.sites.solo?.accepted ?? 0) >= SOLO_BACKLOG, 60_000);
      const soloTally = sr.sites.solo!;
      soloRate = soloTally.accepted / ((soloTally.lastAt - soloStart) / 1000);
      console.log(
        `solo:    1 gateway alone drains ${fmt(soloTally.accepted)} of ${fmt(SOLO_BACKLOG)} records in ${((soloTally.lastAt - soloStart) / 1000).toFixed(2)} s = ${fmt(soloRate)} records/s${soloTally.accepted === SOLO_BACKLOG && soloTally.ranges.length === 1 ? '' : ' INCOMPLETE'}`,
      );
    } finally {
      await solo.stop();
    }
    worker.postMessage({ type: 'capture', on: false } satisfies ToReceiver);
    await ask<{ payloads: unknown[] }>({ type: 'payloads', gateway: 'solo' }); // drop the solo capture
    worker.postMessage({ type: 'capture', on: true } satisfies ToReceiver);

    // ---- 1. backlog drain WITH live ingest running on every gateway ----
    t0 = performance.now();
    for (const gw of fleet) await gw.writeBacklog(BACKLOG, T0);
    const total = GATEWAYS * BACKLOG;
    console.log(
      `backlog: ${fmt(total)} readings (${GATEWAYS} × ${fmt(BACKLOG)}, ${DATAPOINTS} datapoints each) written through ingest in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    worker.postMessage({ type: 'prefixTarget', n: BACKLOG } satisfies ToReceiver);

    // Live ingest: every gateway writes its 20 datapoints every 100 ms, from the moment sync
    // starts (catch-up must not starve it) until LIVE_SECONDS after the backlog is gone.
    const written = new Map(fleet.map((gw) => [gw.id, BACKLOG]));
    let ingestErrors = 0;
    const timers = fleet.map((gw) =>
      setInterval(() => {
        const t = Date.now();
        gw.gateway.ingest
          .acceptMany(
            'fleet',
            gw.datapoints.map((id, k) => ({ id, v: k, t })),
          )
          .then(() => written.set(gw.id, written.get(gw.id)! + DATAPOINTS))
          .catch(() => ingestErrors++);
      }, LIVE_INTERVAL_MS),
    );
    const startedAt = Date.now();
    await Promise.all(fleet.map((gw) => gw.startSync(linkConfig)));
    let peakRss = process.memoryUsage().rss;
    const rssTimer = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 200);
    let r = await waitFor((rep) => fleet.every((gw) => (rep.sites[gw.id]?.prefixAt ?? 0) > 0), BIG ? 600_000 : 90_000);
    // End to end, as the receiver saw it: from the moment sync started until every gateway's backlog was stored.
    const doneAt = Math.max(...fleet.map((gw) => r.sites[gw.id]?.prefixAt || Date.now()));
    const drainS = (doneAt - startedAt) / 1000;
    const perGateway = fleet.map((gw) => {
      const s = r.sites[gw.id];
      return s?.prefixAt ? BACKLOG / ((s.prefixAt - startedAt) / 1000) : 0;
    });
    const ours = total / drainS;
    console.log(
      `drain:   ${GATEWAYS} backlogs (${fmt(total)} records) stored by the receiver in ${drainS.toFixed(2)} s = ${fmt(ours)} backlog records/s aggregate, live ingest running meanwhile`,
    );
    console.log(
      `         per gateway ${fmt(Math.min(...perGateway))} – ${fmt(Math.max(...perGateway))} records/s (min – max, each until its whole backlog arrived)`,
    );
    console.log(
      `ratio:   fleet aggregate / one gateway alone = ${(ours / soloRate).toFixed(2)}  (per gateway: ${(ours / GATEWAYS / soloRate).toFixed(3)} of the solo rate)`,
    );

    // Live keeps going LIVE_SECONDS past the catch-up: measurement → receiver latency once caught up.
    const liveFrom = Date.now();
    worker.postMessage({ type: 'latencyFrom', t: liveFrom } satisfies ToReceiver);
    await new Promise((res) => setTimeout(res, LIVE_SECONDS * 1000));
    for (const timer of timers) clearInterval(timer);
    await new Promise((res) => setTimeout(res, 300)); // in-flight acceptMany settle
    const liveTotal = [...written.values()].reduce((a, b) => a + b, 0) - total;
    const liveS = (Date.now() - startedAt) / 1000;
    r = await waitFor((rep) => fleet.every((gw) => (rep.sites[gw.id]?.accepted ?? 0) >= written.get(gw.id)!), 30_000);
    clearInterval(rssTimer);
    const acked = await Promise.all(fleet.map(async (gw) => (await gw.sync!.snapshot()).acked));
    const lat = [...r.latencies].sort((a, b) => a - b);
    console.log(
      `live:    ${GATEWAYS} × ${DATAPOINTS} datapoints every ${LIVE_INTERVAL_MS} ms for ${liveS.toFixed(1)} s (during the drain and ${LIVE_SECONDS} s after) = ${fmt(liveTotal)} readings; measurement → receiver latency after catch-up p50 ${percentile(lat, 50)} ms, p99 ${percentile(lat, 99)} ms, max ${lat[lat.length - 1]} ms${ingestErrors ? `; ${ingestErrors} ingest errors` : ''}`,
    );
    console.log(
      `         cursors ${acked.every((a, i) => a === written.get(fleet[i]!.id)) ? 'all at the last record written' : `${Math.min(...acked)}..${Math.max(...acked)}`}; peak RSS ${mb(peakRss)} (${mb((peakRss - rss0) / GATEWAYS)} per gateway over the bare process)`,
    );

    // ---- 3. peer: the same payload bytes, published by bare MQTT.js ----
    for (const gw of fleet) await gw.sync!.stop();
    const peerPayloads = new Map<string, Buffer[]>();
    for (const gw of fleet) {
      const m = await ask<{ payloads: Uint8Array[] }>({ type: 'payloads', gateway: gw.id });
      peerPayloads.set(
        gw.id,
        m.payloads.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength)),
      );
    }
    const peerBytes = [...peerPayloads.values()].flat().reduce((n, p) => n + p.length, 0);
    const clients = await Promise.all(fleet.map((gw) => mqtt.connectAsync(broker.url, { clientId: `peer-${gw.id}` })));
    const before = (await report()).peerRecords;
    const capturedRecords = [...peerPayloads.values()].flat().reduce((n, p) => n + decodeBatch(p).records.length, 0);
    const peerStartAt = Date.now();
    await Promise.all(
      fleet.map(async (gw, i) => {
        const payloads = peerPayloads.get(gw.id)!;
        let next = 0;
        // The same in-flight window as the link: WINDOW publishes awaiting PUBACK, in order.
        await Promise.all(
          Array.from({ length: WINDOW }, async () => {
            while (next < payloads.length) await clients[i]!.publishAsync(`peer/${gw.id}/data`, payloads[next++]!, { qos: 1 });
          }),
        );
      }),
    );
    let pr = await report();
    const peerDeadline = Date.now() + 60_000;
    while (pr.peerRecords - before < capturedRecords && Date.now() < peerDeadline) {
      await new Promise((res) => setTimeout(res, 20));
      pr = await report();
    }
    const peerS = (pr.peerLastAt - peerStartAt) / 1000;
    const peerRecords = pr.peerRecords - before;
    await Promise.all(clients.map((c) => c.endAsync()));
    const theirs = peerRecords / peerS;
    console.log(
      `peer:    the same ${(peerBytes / 1e6).toFixed(1)} MB (${fmt(peerRecords)} records) from ${GATEWAYS} bare MQTT.js clients, QoS 1, window ${WINDOW}: ${peerS.toFixed(2)} s = ${fmt(theirs)} records/s`,
    );
    console.log(`ratio:   fleet drain / Mosquitto ingest of the same bytes = ${(ours / theirs).toFixed(2)}`);

    // ---- verdict ----
    const problems: string[] = [];
    let duplicatesDropped = 0;
    let repeated = 0;
    for (const gw of fleet) {
      const s = r.sites[gw.id];
      const w = written.get(gw.id)!;
      if (!s) {
        problems.push(`${gw.id}: nothing received`);
        continue;
      }
      duplicatesDropped += s.duplicates;
      repeated += s.repeatedKeys;
      if (s.accepted !== w) problems.push(`${gw.id}: stored ${s.accepted} of ${w} written`);
      if (s.ranges.length !== 1 || s.ranges[0]![0] !== 1 || s.ranges[0]![1] !== w)
        problems.push(`${gw.id}: sequence ranges ${JSON.stringify(s.ranges.slice(0, 4))}`);
      if (s.foreignKeys) problems.push(`${gw.id}: ${s.foreignKeys} batches with another gateway's key`);
      if (s.outOfOrder) problems.push(`${gw.id}: ${s.outOfOrder} records out of order per datapoint`);
    }
    if (r.malformed) problems.push(`${r.malformed} undecodable messages`);
    if (ingestErrors) problems.push(`${ingestErrors} live ingest calls failed`);
    if (peerRecords !== capturedRecords) problems.push(`peer: receiver saw ${peerRecords} of ${capturedRecords} records`);
    const gotAll = fleet.every((gw) => r.sites[gw.id] !== undefined);
    const lost = fleet.reduce((n, gw) => n + Math.max(0, written.get(gw.id)! - (r.sites[gw.id]?.accepted ?? 0)), 0);
    console.log(`lost:    ${lost}  (records written on the gateways and never stored by the receiver, after dedupe by gateway id + seq)`);
    console.log(
      `check:   ${problems.length === 0 && gotAll ? 'OK' : 'FAILED'} — per gateway stored == written (${fmt(total + liveTotal)} records in all), seq ranges [[1, N]], keys per gateway only, in order per datapoint; ${fmt(duplicatesDropped)} duplicate records dropped by the receiver (${repeated} batches resent under the same key)`,
    );
    for (const p of problems.slice(0, 20)) console.log(`  ${p}`);
    failed = problems.length > 0 || !gotAll;
  } finally {
    await Promise.all(fleet.map((gw) => gw.stop().catch((err: Error) => console.error(`${gw.id} did not stop: ${err.message}`))));
    worker.postMessage({ type: 'close' } satisfies ToReceiver);
    await Promise.race([ask(null), new Promise((res) => setTimeout(res, 2000))]);
    await worker.terminate();
    for (const fn of teardowns.reverse()) await fn();
  }
  process.exit(failed ? 1 : 0);
}

/**
 * This file again, in a worker thread. Run from source (`--import tsx`), the worker does not
 * inherit tsx's loader hooks, so it registers them itself before importing the file.
 */
function receiverWorker(url: string): Worker {
  const self = import.meta.url;
  if (!self.endsWith('.ts')) return new Worker(new URL(self), { workerData: { url } });
  const api = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(self)}); });`;
  return new Worker(code, { eval: true, workerData: { url } });
}
