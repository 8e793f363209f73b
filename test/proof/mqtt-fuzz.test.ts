/**
 * MQTT fuzz against the REAL `outpost start` process (issue 11, "Reliability"): many
 * concurrent raw TCP connections send random bytes and mutated valid packets built with
 * `mqtt-packet` (flipped bytes, truncated or inflated remaining lengths, 65 KB topics,
 * 100+ topic levels, 256 MB length claims, protocol-order violations). Meanwhile a
 * well-behaved MQTT.js witness publishes and receives at QoS 1 on its own connection.
 *
 * Asserts: the process never exits; the witness keeps its connection, every value it got a
 * PUBACK for is stored (read back over REST) and delivered back to it; every hostile session
 * is released afterwards; RSS stays below RSS_BOUND_MB.
 *
 * Deterministic: connection i replays the byte script derived from (seed, i) alone, so a
 * failing connection can be replayed on its own with OUTPOST_FUZZ_SEED and OUTPOST_FUZZ_ONLY=i.
 *   npx tap test/proof/mqtt-fuzz.test.ts                        (CI: ~30 s, 3,000 connections)
 *   OUTPOST_PROOF_LONG=1 npx tap test/proof/mqtt-fuzz.test.ts   (50,000 connections)
 */
import t from 'tap';
import mqtt from 'mqtt';
import { connectionSeed, runConnection, type FuzzStats } from './fuzz-corpus.js';
import { eventually, prng, REGISTER_RACE_TODO, rssBytes, rssSampler, sleep, startOutpostProcess, Witness } from './harness.js';

const LONG = process.env.OUTPOST_PROOF_LONG === '1';
const CONNECTIONS = Number(process.env.OUTPOST_FUZZ_CONNECTIONS ?? (LONG ? 50_000 : 3_000));
/** Replay a single connection's script (its index), e.g. one a failing run pointed at. */
const ONLY = process.env.OUTPOST_FUZZ_ONLY === undefined ? undefined : Number(process.env.OUTPOST_FUZZ_ONLY);
const CONCURRENCY = 64;
const SEED = Number(process.env.OUTPOST_FUZZ_SEED ?? 0x0c7b05e1);
/** The gateway must fit a 1 GB Raspberry Pi next to the OS and Node-RED: idle is ~100-155 MB. */
const RSS_BOUND_MB = 300;
/** And the fuzz itself may not cost more than this above idle (64 live connections at most). */
const RSS_GROWTH_BOUND_MB = 150;

t.test(`MQTT fuzz: ${CONNECTIONS} hostile connections (seed ${SEED}), the broker and a well-behaved client survive`, async (t) => {
  const gw = await startOutpostProcess(t, { extraBroker: `limits: { maxConnections: ${CONCURRENCY + 50} }` });
  const idleRss = await rssBytes(gw.httpUrl);
  const witness = await Witness.connect(gw.mqttPort, 'fuzz.witness');
  t.teardown(() => witness.end());
  witness.start(20);
  const sampler = rssSampler(gw.httpUrl, 500);

  const stats: FuzzStats = { closedByBroker: 0, connections: 0, accepted: 0 };
  const indices = ONLY === undefined ? Array.from({ length: CONNECTIONS }, (_, i) => i) : [ONLY];
  let launched = 0;
  const started = Date.now();
  const workers = Array.from({ length: CONCURRENCY }, async () => {
    while (launched < indices.length && gw.alive()) {
      const i = indices[launched++]!;
      await runConnection(gw.mqttPort, prng(connectionSeed(SEED, i)), stats);
    }
  });
  await Promise.all(workers);
  const fuzzEnded = Date.now();
  await sleep(500);
  const rss = await sampler.stop();
  await witness.stop();

  t.ok(
    gw.alive(),
    `the process is still running after ${stats.connections} fuzz connections (exit: ${gw.proc.child.exitCode ?? gw.proc.child.signalCode ?? 'none'})`,
  );
  if (!gw.alive()) t.comment(gw.proc.stderr().slice(-4000));
  if (ONLY === undefined) {
    // The corpus must really reach both the parser's refusals and the session code, or the test proves little.
    t.ok(stats.closedByBroker > stats.connections / 10, `the broker closed ${stats.closedByBroker} of ${stats.connections} hostile connections on its own`);
    t.ok(stats.accepted > stats.connections / 4, `${stats.accepted} connections got past CONNECT, so the mutated packets reached the broker's session code`);
  }
  t.equal(witness.disconnects, 0, 'the witness kept its one connection throughout');
  t.same(witness.failures, [], 'no witness publication failed');
  t.ok(witness.acked.length >= 20, `the witness got ${witness.acked.length} of ${witness.sent} publications acknowledged`);
  // Liveness, not speed: during the fuzz the witness was never starved for long.
  const during = [started, ...witness.ackTimes.filter((at) => at >= started && at <= fuzzEnded), fuzzEnded];
  const longestGap = Math.max(...during.slice(1).map((at, i) => at - during[i]!));
  t.ok(longestGap < 10_000, `longest wait for a PUBACK during the fuzz: ${longestGap} ms (< 10 s)`);
  const stored = await witness.stored(gw.httpUrl);
  t.same(
    witness.acked.filter((n) => !stored.has(n)),
    [],
    `all ${witness.acked.length} acknowledged values are stored`,
  );
  t.same(
    witness.acked.filter((n) => !witness.received.has(n)),
    [],
    'and each was delivered back to the QoS 1 subscriber',
  );
  const mb = (b: number) => (b / 2 ** 20).toFixed(1);
  t.ok(rss.max < RSS_BOUND_MB * 2 ** 20, `RSS idle ${mb(idleRss)} MB, max during fuzz ${mb(rss.max)} MB (bound ${RSS_BOUND_MB} MB)`);
  t.ok(rss.max - idleRss < RSS_GROWTH_BOUND_MB * 2 ** 20, `RSS grew by ${mb(rss.max - idleRss)} MB during the fuzz (bound ${RSS_GROWTH_BOUND_MB} MB)`);
  // Every hostile session is released: the broker counts only the witness again (no leaked clients).
  let clients = '';
  const released = await eventually(async () => {
    clients = /^outpost_mqtt_clients (\d+)$/m.exec(await (await fetch(`${gw.httpUrl}/metrics`)).text())?.[1] ?? '?';
    return clients === '1';
  }, 5_000);
  t.ok(released, `after the fuzz the broker counts ${clients} client(s): the witness only`, REGISTER_RACE_TODO);
  // And a newcomer gets normal service: the retained latest value of the witness's datapoint.
  const late = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.mqttPort}`, { clientId: 'after-fuzz', reconnectPeriod: 0, connectTimeout: 5000 });
  t.teardown(() => late.endAsync(true));
  const retained = new Promise<{ v: number }>((resolve) => late.once('message', (_topic, payload) => resolve(JSON.parse(payload.toString()) as { v: number })));
  await late.subscribeAsync('outpost/dp/fuzz.witness/value', { qos: 1 });
  t.equal(
    (await Promise.race([retained, sleep(5000).then(() => ({ v: -1 }))])).v,
    Math.max(...witness.acked),
    'a client connecting after the fuzz gets the retained latest witness value',
  );
  t.notMatch(gw.proc.stdout() + gw.proc.stderr(), /"level":(50|60)|uncaught|unhandled/i, 'no error or fatal log line');
  t.comment(`fuzz: ${stats.connections} connections in ${((fuzzEnded - started) / 1000).toFixed(1)} s, seed ${SEED}`);
});
