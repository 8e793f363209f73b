/**
 * A burst of pipelined publications against the REAL `outpost start` process (issue 17):
 * four raw TCP clients each write 50,000 pre-encoded QoS 0 value messages to 100 datapoints
 * that do not exist yet (each auto-registered on its first value), all at once, as a fast
 * load tool does. Seen before the fix: `RangeError: Maximum call stack size exceeded` in
 * the broker's topic router, killing the process in 1 of 4 runs.
 *
 * Asserts: the process stays up; a well-behaved QoS 1 client keeps being served throughout
 * (acknowledged, stored, delivered back); memory stays bounded (the flooders wait on TCP
 * back-pressure, not in our memory); and, since nothing is dropped on the way, every value
 * of the burst is stored, each datapoint registered once.
 *   npx tap test/proof/burst.test.ts          (~30 s)
 */
import t from 'tap';
import { connect as netConnect, type Socket } from 'node:net';
import { generate } from 'mqtt-packet';
import { describeMemory, eventually, rssBytes, rssSampler, sleep, startOutpostProcess, Witness } from './harness.js';

const CLIENTS = 4;
const PER_CLIENT = 50_000;
const DATAPOINTS = 100;
/** Idle is ~100-155 MB with the Pi heap; the 1 GB Pi must keep room for the OS and Node-RED. */
const RSS_BOUND_MB = 300;
const RSS_GROWTH_BOUND_MB = 150;
const mb = (b: number) => (b / 2 ** 20).toFixed(1);

async function metric(httpUrl: string, re: RegExp): Promise<number> {
  return Number(re.exec(await (await fetch(`${httpUrl}/metrics`)).text())?.[1] ?? 0);
}

/** Connects, waits for the CONNACK, then writes every publication in one go; resolves when the socket took it all. */
function flood(port: number, index: number): { socket: Socket; written: Promise<void> } {
  const packets: Buffer[] = [];
  for (let i = 0; i < PER_CLIENT; i++) {
    packets.push(
      generate({
        cmd: 'publish',
        topic: `outpost/dp/burst.p${i % DATAPOINTS}/value`,
        payload: Buffer.from(`{"v":${index * PER_CLIENT + i}}`),
        qos: 0,
        retain: false,
        dup: false,
      }),
    );
  }
  const bytes = Buffer.concat(packets);
  const socket = netConnect({ host: '127.0.0.1', port });
  socket.on('error', () => undefined); // a dropped flooder shows as fewer stored values below
  socket.once('connect', () =>
    socket.write(generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `burst-${index}`, keepalive: 0 })),
  );
  const written = new Promise<void>((resolve) => socket.once('data', () => socket.write(bytes, () => resolve())));
  return { socket, written };
}

/**
 * A subscriber to every value that leaves in the middle of the burst, as a load tool's does
 * when its measurement ends: the messages queued for delivery then match no subscriber.
 */
function subscriberLeavingAfter(port: number, messages: number): { left: Promise<number> } {
  const socket = netConnect({ host: '127.0.0.1', port });
  socket.on('error', () => undefined);
  socket.once('connect', () => {
    socket.write(generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'burst-subscriber', keepalive: 0 }));
    socket.write(generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'outpost/dp/+/value', qos: 0 }] }));
  });
  const left = new Promise<number>((resolve) => {
    let bytes = 0;
    // Each delivered value message is at least 30 bytes; close once that many have arrived.
    socket.on('data', (d: Buffer) => {
      bytes += d.length;
      if (bytes >= messages * 30) {
        socket.destroy();
        resolve(bytes);
      }
    });
    socket.once('close', () => resolve(bytes));
  });
  return { left };
}

t.test(`${CLIENTS} clients pipelining ${PER_CLIENT} QoS 0 publications each to ${DATAPOINTS} new datapoints`, async (t) => {
  const gw = await startOutpostProcess(t);
  const idle = await rssBytes(gw.httpUrl);
  const witness = await Witness.connect(gw.mqttPort, 'burst.witness');
  t.teardown(() => witness.end());
  witness.start(20);
  const sampler = rssSampler(gw.httpUrl, 250);
  const started = Date.now();

  const subscriber = subscriberLeavingAfter(gw.mqttPort, 20_000);
  await sleep(200);
  const flooders = Array.from({ length: CLIENTS }, (_, i) => flood(gw.mqttPort, i));
  t.teardown(() => {
    for (const f of flooders) f.socket.destroy();
  });
  const total = CLIENTS * PER_CLIENT;
  const storedRe = /^outpost_points_stored_total\{adapter="mqtt"\} (\d+)/m;
  let stored = 0;
  await eventually(async () => {
    if (!gw.alive()) return true;
    stored = await metric(gw.httpUrl, storedRe);
    return stored >= total + witness.acked.length;
  }, 120_000);
  const allStored = stored >= total + witness.acked.length;
  const floodEnded = Date.now();
  t.comment(`the subscriber left after ${await subscriber.left} bytes`);
  await Promise.race([Promise.all(flooders.map((f) => f.written)), sleep(1000)]);
  await witness.stop(10_000);
  const rss = await sampler.stop();

  t.ok(gw.alive(), `the process is still running (exit: ${gw.proc.child.exitCode ?? gw.proc.child.signalCode ?? 'none'})`);
  if (!gw.alive()) t.comment(gw.proc.stderr().slice(-4000));
  t.ok(allStored, `every publication of the burst was stored: ${stored - witness.acked.length} of ${total} in ${((floodEnded - started) / 1000).toFixed(1)} s`);

  t.equal(witness.disconnects, 0, 'the witness kept its connection');
  t.same(witness.failures, [], 'no witness publication failed');
  const during = [started, ...witness.ackTimes.filter((at) => at <= floodEnded), floodEnded];
  const longestGap = Math.max(...during.slice(1).map((at, i) => at - during[i]!));
  t.ok(longestGap < 5_000, `longest wait for a witness PUBACK during the burst: ${longestGap} ms (< 5 s)`);
  const witnessStored = await witness.stored(gw.httpUrl);
  t.same(
    witness.acked.filter((n) => !witnessStored.has(n)),
    [],
    `all ${witness.acked.length} acknowledged witness values are stored`,
  );
  t.same(witness.undelivered(), [], 'and delivered back to its QoS 1 subscription');

  const peak = rss.peak ? ` (peak: ${describeMemory(rss.peak)})` : '';
  t.ok(rss.max < RSS_BOUND_MB * 2 ** 20, `RSS idle ${mb(idle)} MB, max during the burst ${mb(rss.max)} MB (bound ${RSS_BOUND_MB} MB)${peak}`);
  t.ok(rss.max - idle < RSS_GROWTH_BOUND_MB * 2 ** 20, `RSS grew by ${mb(rss.max - idle)} MB (bound ${RSS_GROWTH_BOUND_MB} MB)`);

  const list = (await (await fetch(`${gw.httpUrl}/api/datapoints?q=burst.p`)).json()) as { items: Array<{ id: string }> };
  const ids = list.items.map((d) => d.id).filter((id) => /^burst\.p\d+$/.test(id));
  t.equal(ids.length, DATAPOINTS, `${DATAPOINTS} datapoints auto-registered`);
  const one = (await (await fetch(`${gw.httpUrl}/api/datapoints/burst.p7/values?from=0&limit=100000`)).json()) as { values: Array<{ v: number; t: number }> };
  t.equal(
    one.values.length,
    (CLIENTS * PER_CLIENT) / DATAPOINTS,
    'one datapoint holds every value sent to it, none overwritten by another of the same millisecond',
  );
  t.notMatch(gw.proc.stdout() + gw.proc.stderr(), /"level":(50|60)|uncaught|unhandled|RangeError/i, 'no error or fatal log line');
});
