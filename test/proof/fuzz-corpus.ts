/**
 * The MQTT fuzz corpus (issue 11): scripts of random and mutated MQTT 3.1.1 packets for one
 * raw TCP connection, each derived from a seed alone so any connection can be replayed.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { generate, type Packet } from 'mqtt-packet';
import { type prng, sleep } from './harness.js';

/** Seed of connection i: a 32-bit mix of the run seed and the index (Weyl step, then a murmur3 multiplier). */
export const connectionSeed = (seed: number, i: number): number => Math.imul((seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0, 0x85ebca6b) >>> 0;

export type Rng = ReturnType<typeof prng>;

const connectPacket = (rng: Rng): Packet => ({
  cmd: 'connect',
  protocolId: 'MQTT',
  protocolVersion: 4,
  clean: rng.next() < 0.8,
  clientId: `fuzz-${rng.int(1e9)}`,
  keepalive: rng.pick([0, 1, 60, 65535]),
  ...(rng.next() < 0.2
    ? { will: { topic: `fuzz/will/${rng.int(100)}`, payload: rng.bytes(rng.int(64)), qos: rng.pick([0, 1, 2] as const), retain: rng.next() < 0.5 } }
    : {}),
});

/** Topic strings that stress the parser, the topic tree and the gateway's datapoint guard. */
function nastyTopic(rng: Rng): string {
  switch (rng.int(9)) {
    case 0:
      return 'x'.repeat(65_535); // the longest UTF-8 string MQTT can carry (§1.5.3)
    case 1:
      return Array.from({ length: 100 + rng.int(200) }, (_, i) => `l${i}`).join('/'); // 100+ levels
    case 2:
      return `outpost/dp/${Array.from({ length: 120 }, () => 'a').join('/')}/value`;
    case 3:
      return rng.pick(['#', '+', 'a/#/b', 'a/b+/c', '', '/', '//', '$SYS/x', 'outpost/#', '\u0000', 'a\u0000b', '\ud800']);
    case 4:
      return `outpost/dp/fuzz.d${rng.int(20)}/${rng.pick(['value', 'set', 'meta', 'schedule', 'error', 'x'])}`;
    case 5:
      return `outpost/dp/${rng.pick(['UPPER', 'sp ace', '..', 'é', 'a'.repeat(300), '+', '#'])}/value`;
    case 6:
      return `outpost/${rng.pick(['gateway/status', 'adapter/x/status', 'gateway/rejected'])}`;
    case 7:
      return rng.bytes(1 + rng.int(40)).toString('latin1');
    default:
      return `fuzz/${rng.int(1000)}`;
  }
}

function nastyPayload(rng: Rng): Buffer {
  return rng.pick([
    () => Buffer.from(JSON.stringify({ v: rng.next() * 1e6, t: Date.now() })),
    () => Buffer.from('{"v":'),
    () => Buffer.from(JSON.stringify({ v: 'x'.repeat(rng.int(10_000)) })),
    () => Buffer.from(JSON.stringify({ v: { a: [1, { b: null }] }, t: -1 })),
    () => Buffer.from('[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[['.repeat(50)),
    () => Buffer.from('{"v":1e999,"t":1e999}'),
    () => Buffer.from('{"__proto__":{"polluted":1},"v":1}'),
    () => rng.bytes(rng.int(2_000)),
    () => Buffer.alloc(0),
  ])();
}

function validPacket(rng: Rng): Packet {
  switch (rng.int(7)) {
    case 0:
    case 1: {
      const qos = rng.pick([0, 1, 2] as const);
      return {
        cmd: 'publish',
        topic: nastyTopic(rng),
        payload: nastyPayload(rng),
        qos,
        retain: rng.next() < 0.3,
        dup: rng.next() < 0.1,
        ...(qos > 0 ? { messageId: 1 + rng.int(65_535) } : {}),
      } as Packet;
    }
    case 2:
      return {
        cmd: 'subscribe',
        messageId: 1 + rng.int(65_535),
        subscriptions: Array.from({ length: 1 + rng.int(5) }, () => ({ topic: nastyTopic(rng), qos: rng.pick([0, 1, 2] as const) })),
      } as Packet;
    case 3:
      return { cmd: 'unsubscribe', messageId: 1 + rng.int(65_535), unsubscriptions: [nastyTopic(rng)] } as Packet;
    case 4:
      return { cmd: rng.pick(['puback', 'pubrec', 'pubrel', 'pubcomp'] as const), messageId: rng.int(65_536) } as Packet;
    case 5:
      return rng.next() < 0.5 ? { cmd: 'pingreq' } : connectPacket(rng); // a second CONNECT is a protocol violation (§3.1)
    default:
      return { cmd: 'disconnect' };
  }
}

/** Serialises a packet; mqtt-packet refuses some nasty fields (e.g. lone surrogates), then a random blob stands in. */
function encode(rng: Rng, p: Packet): Buffer {
  try {
    return generate(p);
  } catch {
    return rng.bytes(1 + rng.int(64));
  }
}

function mutate(rng: Rng, buf: Buffer): Buffer {
  const b = Buffer.from(buf);
  switch (rng.int(6)) {
    case 0: // flip bytes
      for (let i = 0, n = 1 + rng.int(8); i < n && b.length > 0; i++) b[rng.int(b.length)] ^= 1 << rng.int(8);
      return b;
    case 1: // truncate: the remaining length promises more than ever arrives
      return b.subarray(0, rng.int(b.length));
    case 2: // inflate the first remaining-length byte without adding a body
      if (b.length > 1) b[1] = (b[1]! | 0x7f) & 0x7f;
      return b;
    case 3: // huge remaining-length claims: 268,435,455 bytes (the maximum, §2.2.3) and a malformed 5-byte length
      return Buffer.concat([
        Buffer.from([b[0] ?? 0x30]),
        rng.pick([Buffer.from([0xff, 0xff, 0xff, 0x7f]), Buffer.from([0xff, 0xff, 0xff, 0xff, 0x01]), Buffer.from([0x80, 0x80, 0x80, 0x01])]),
        rng.bytes(rng.int(100)),
      ]);
    case 4: // reserved packet types 0 and 15, and bad fixed-header flags (§2.2.2)
      b[0] = rng.pick([0x00, 0xf0, 0x31 | 0x06, 0x82 & 0xf0, 0x62 & 0xf0]);
      return b;
    default: // duplicate and splice
      return Buffer.concat([b, b.subarray(rng.int(Math.max(1, b.length)))]);
  }
}

export interface Script {
  /** A valid CONNECT sent first, when the script has one; the rest waits for its CONNACK unless `pipelined`. */
  connect?: Buffer;
  chunks: Buffer[];
  /** Send everything at once, before the broker answered CONNECT (the parser sees it mid-authentication). */
  pipelined: boolean;
  /** Write the first 64 bytes of each chunk one byte at a time (a slow, fragmenting peer). */
  drip: boolean;
  /** How long the connection stays open after its last write. */
  hold: number;
}

/** One fuzz connection: a script of writes, then a short wait for the broker's reaction. */
export function buildScript(rng: Rng): Script {
  const chunks: Buffer[] = [];
  let connect: Buffer | undefined;
  const mode = rng.int(10);
  if (mode === 0)
    chunks.push(rng.bytes(1 + rng.int(4096))); // pure noise
  else if (mode === 1)
    chunks.push(mutate(rng, encode(rng, connectPacket(rng)))); // a broken CONNECT
  else if (mode === 2)
    chunks.push(encode(rng, validPacket(rng))); // no CONNECT first (§3.1: must be first)
  else {
    connect = encode(rng, connectPacket(rng));
    for (let i = 0, n = 1 + rng.int(6); i < n; i++) {
      const p = encode(rng, validPacket(rng));
      chunks.push(rng.next() < 0.5 ? mutate(rng, p) : p);
    }
  }
  return { ...(connect ? { connect } : {}), chunks, pipelined: rng.next() < 0.1, drip: rng.next() < 0.05, hold: rng.int(300) };
}

export interface FuzzStats {
  connections: number;
  /** Connections the broker closed before the fuzzer did. */
  closedByBroker: number;
  /** Connections that got CONNACK 0, so their later packets reached the session code. */
  accepted: number;
}

export async function runConnection(port: number, rng: Rng, stats: FuzzStats): Promise<void> {
  const script = buildScript(rng);
  const socket: Socket = netConnect({ host: '127.0.0.1', port });
  // A reset is the broker's expected answer to garbage; the close is what the test counts.
  socket.on('error', () => undefined);
  let closed = false;
  const closedP = new Promise<void>((resolve) =>
    socket.once('close', () => {
      closed = true;
      resolve();
    }),
  );
  // Read everything the broker answers so it never blocks on us; the first bytes tell if CONNECT was accepted.
  const firstAnswer = new Promise<void>((resolve) => {
    // The broker's writes may arrive split (Aedes writes a packet in pieces): collect the 4 CONNACK bytes.
    let head = Buffer.alloc(0);
    let decided = false;
    socket.on('data', (d: Buffer) => {
      if (decided) return;
      head = Buffer.concat([head, d]);
      if (head.length < 4) return;
      decided = true;
      if (head[0] === 0x20 && head[3] === 0) stats.accepted++;
      resolve();
    });
    void closedP.then(resolve);
  });
  await new Promise<void>((resolve) => {
    socket.once('connect', () => resolve());
    void closedP.then(resolve);
  });
  stats.connections++;
  const write = async (c: Buffer): Promise<void> => {
    if (closed) return;
    if (!script.drip) {
      socket.write(c);
      return;
    }
    for (let i = 0; i < Math.min(c.length, 64) && !closed; i++) {
      socket.write(c.subarray(i, i + 1));
      await sleep(2);
    }
    if (!closed && c.length > 64) socket.write(c.subarray(64));
  };
  if (script.connect) {
    await write(script.connect);
    // Wait (bounded) for CONNACK so the mutated packets meet an authenticated session, unless pipelined.
    if (!script.pipelined) await Promise.race([firstAnswer, sleep(3000)]);
  }
  for (const c of script.chunks) await write(c);
  await sleep(script.hold);
  if (closed) stats.closedByBroker++;
  socket.destroy();
}
