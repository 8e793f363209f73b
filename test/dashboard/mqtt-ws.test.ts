// The dashboard's own MQTT 3.1.1 client (runtime/dashboard/public/mqtt-ws.js and its codec,
// mqtt-codec.js), in Node:
// the codec against mqtt-packet (an independent implementation: it parses what we encode and
// encodes what we parse), frames cut at every byte, several packets per frame, remaining
// lengths of 1-4 bytes, malformed and oversized packets; then the client against a real
// websocket peer (the `ws` server) scripted byte by byte: CONNACK refusals, QoS 1 PUBACK,
// keepalive, a packet over the limit, reconnect.
import t, { type Test } from 'tap';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import mqttPacket from 'mqtt-packet';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { mulberry32 } from '../helpers/rng.js';
import { REPO_ROOT } from '../helpers/process.js';
import { eventually } from '../helpers/gateway.js';

/** The shapes mqtt-codec.js and mqtt-ws.js export (browser modules without type declarations). */
interface Packet {
  type: string;
  topic?: string;
  qos?: number;
  dup?: boolean;
  retain?: boolean;
  packetId?: number;
  payload?: Uint8Array;
  returnCode?: number;
  sessionPresent?: boolean;
  returnCodes?: number[];
}
interface Reader {
  push(bytes: Uint8Array): Packet[];
  readonly buffered: number;
}
interface ClientOptions {
  url: string;
  clientId: string;
  keepaliveSeconds?: number;
  connectTimeoutMs?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  maxPacketBytes?: number;
  WebSocket?: unknown;
  onConnect?: () => void;
  onMessage?: (topic: string, payload: Uint8Array, packet: Packet) => void;
  onClose?: (e: { wasConnected: boolean; error?: Error & { code?: string; returnCode?: number } }) => void;
  onSubscribeRefused?: (filters: string[]) => void;
}
interface Codec {
  PacketReader: new (o?: { maxPacketBytes?: number }) => Reader;
  MqttWsClient: new (o: ClientOptions) => { start(): void; stop(): void; subscribe(topics: string[]): void; connected: boolean };
  encodeRemainingLength(n: number): number[];
  encodeConnect(o: { clientId: string; keepaliveSeconds: number; cleanSession?: boolean }): Uint8Array;
  encodeSubscribe(id: number, filters: Array<{ topic: string; qos?: number }>): Uint8Array;
  encodePuback(id: number): Uint8Array;
  PINGREQ: Uint8Array;
  DISCONNECT: Uint8Array;
}

const publicModule = async (name: string): Promise<Partial<Codec>> => import(pathToFileURL(join(REPO_ROOT, 'runtime', 'dashboard', 'public', name)).href);
const codec = { ...(await publicModule('mqtt-codec.js')), ...(await publicModule('mqtt-ws.js')) } as Codec;

/** What mqtt-packet makes of bytes we encoded (one packet). */
function parseWithMqttPacket(bytes: Uint8Array): mqttPacket.Packet {
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const got: mqttPacket.Packet[] = [];
  const errors: Error[] = [];
  parser.on('packet', (p) => got.push(p));
  parser.on('error', (e) => errors.push(e));
  parser.parse(Buffer.from(bytes));
  if (errors.length || got.length !== 1) throw new Error(`mqtt-packet: ${errors.map((e) => e.message).join('; ') || `${got.length} packets`}`);
  return got[0]!;
}

const gen = (p: Record<string, unknown>): Buffer => mqttPacket.generate(p as unknown as mqttPacket.Packet, { protocolVersion: 4 });
const publish = (topic: string, payload: Buffer | string, extra: Record<string, unknown> = {}): Buffer =>
  gen({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 0, retain: false, dup: false, ...extra });
const text = (p: Packet): string => Buffer.from(p.payload!).toString('utf8');

/** Throws with `code` (an MqttProtocolError), checked by the caller. */
function errorOf(fn: () => unknown): { code?: string; message: string } {
  try {
    fn();
  } catch (err) {
    return err as { code?: string; message: string };
  }
  throw new Error('expected an error');
}

t.test('encoding, checked by mqtt-packet', async (t) => {
  // MQTT 3.1.1 §2.2.3, Table 2.4: the boundaries of 1, 2, 3 and 4 length bytes.
  const table: Array<[number, number[]]> = [
    [0, [0x00]],
    [127, [0x7f]],
    [128, [0x80, 0x01]],
    [16_383, [0xff, 0x7f]],
    [16_384, [0x80, 0x80, 0x01]],
    [2_097_151, [0xff, 0xff, 0x7f]],
    [2_097_152, [0x80, 0x80, 0x80, 0x01]],
    [268_435_455, [0xff, 0xff, 0xff, 0x7f]],
  ];
  for (const [n, bytes] of table) t.same(codec.encodeRemainingLength(n), bytes, `remaining length ${n}`);
  t.throws(() => codec.encodeRemainingLength(268_435_456), RangeError, 'past four bytes is refused');

  const connect = codec.encodeConnect({ clientId: 'dashboard0a1b2c', keepaliveSeconds: 30 });
  t.same(
    Array.from(connect.subarray(0, 12)),
    [0x10, 27, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 30],
    'CONNECT header: "MQTT", level 4, clean session, keepalive 30',
  );
  t.match(parseWithMqttPacket(connect), { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 30, clientId: 'dashboard0a1b2c' });
  t.notOk((parseWithMqttPacket(connect) as mqttPacket.IConnectPacket).username, 'no user name: the session cookie authenticates');

  const sub = codec.encodeSubscribe(513, [{ topic: 'site7/dp/+/value' }, { topic: 'site7/adapter/+/status', qos: 1 }]);
  t.equal(sub[0], 0x82, 'SUBSCRIBE flags 0010 [MQTT-3.8.1-1]');
  t.match(parseWithMqttPacket(sub), {
    cmd: 'subscribe',
    messageId: 513,
    subscriptions: [
      { topic: 'site7/dp/+/value', qos: 0 },
      { topic: 'site7/adapter/+/status', qos: 1 },
    ],
  });
  t.match(parseWithMqttPacket(codec.encodePuback(65_535)), { cmd: 'puback', messageId: 65_535 });
  t.match(parseWithMqttPacket(codec.PINGREQ), { cmd: 'pingreq' });
  t.match(parseWithMqttPacket(codec.DISCONNECT), { cmd: 'disconnect' });
  t.throws(() => codec.encodeSubscribe(0, [{ topic: 'a' }]), RangeError, 'packet id 0 is refused');
  t.throws(() => codec.encodeSubscribe(1, []), RangeError, 'a SUBSCRIBE without filters is refused');
  t.throws(() => codec.encodeConnect({ clientId: 'x', keepaliveSeconds: 70_000 }), RangeError, 'keepalive past 16 bits is refused');
});

t.test('decoding: remaining lengths of 1 to 4 bytes, whole and cut into frames', async (t) => {
  // Payload sizes whose PUBLISH needs a remaining length of 1, 2, 3 and 4 bytes.
  for (const [bytes, size] of [
    [1, 10],
    [2, 200],
    [3, 20_000],
    [4, 2_100_000],
  ] as const) {
    const payload = Buffer.alloc(size, 0x61 + bytes);
    const wire = publish('outpost/dp/big/value', payload, { qos: 1, messageId: 42, retain: true });
    t.equal(wire[bytes]! & 0x80, 0, `${bytes} length byte(s): the last one has no continuation bit`);
    if (bytes > 1) t.equal(wire[bytes - 1]! & 0x80, 0x80, 'the one before it has');
    const whole = new codec.PacketReader({ maxPacketBytes: 4 * 1024 * 1024 }).push(wire);
    t.equal(whole.length, 1);
    t.match(whole[0], { type: 'publish', topic: 'outpost/dp/big/value', qos: 1, retain: true, dup: false, packetId: 42 });
    t.equal(whole[0]!.payload!.length, size, `${bytes}-byte remaining length: whole payload`);
    // The same packet in 1,000-byte frames (or 3-byte ones for the small ones).
    const reader = new codec.PacketReader({ maxPacketBytes: 4 * 1024 * 1024 });
    const step = size < 1000 ? 3 : 1000;
    const got: Packet[] = [];
    for (let i = 0; i < wire.length; i += step) got.push(...reader.push(wire.subarray(i, i + step)));
    t.equal(got.length, 1, `${bytes}-byte remaining length: one packet from ${Math.ceil(wire.length / step)} frames`);
    t.ok(Buffer.from(got[0]!.payload!).equals(payload), 'payload intact');
    t.equal(reader.buffered, 0, 'nothing left buffered');
  }
});

t.test('decoding: several packets per frame, cut at every byte', async (t) => {
  const stream = Buffer.concat([
    gen({ cmd: 'connack', returnCode: 0, sessionPresent: false }),
    gen({ cmd: 'suback', messageId: 1, granted: [0, 128] }),
    publish('outpost/dp/a/value', '{"v":1}'),
    publish('outpost/dp/b/value', '{"v":"é"}', { qos: 1, messageId: 9, dup: true }),
    gen({ cmd: 'pingresp' }),
    publish('outpost/adapter/x/status', Buffer.alloc(300, 0x7a)),
  ]);
  const expected = [
    { type: 'connack', returnCode: 0, sessionPresent: false },
    { type: 'suback', packetId: 1, returnCodes: [0, 0x80] },
    { type: 'publish', topic: 'outpost/dp/a/value', qos: 0 },
    { type: 'publish', topic: 'outpost/dp/b/value', qos: 1, packetId: 9, dup: true },
    { type: 'pingresp' },
    { type: 'publish', topic: 'outpost/adapter/x/status' },
  ];
  const all = new codec.PacketReader().push(stream);
  t.match(all, expected, 'all six from one frame, in order');
  t.equal(text(all[3]!), '{"v":"é"}');
  let cuts = 0;
  for (let at = 0; at <= stream.length; at++) {
    const reader = new codec.PacketReader();
    const got = [...reader.push(stream.subarray(0, at)), ...reader.push(stream.subarray(at))];
    if (got.length !== 6 || got[5]!.payload!.length !== 300 || text(got[2]!) !== '{"v":1}')
      t.fail(`cut at byte ${at}: ${JSON.stringify(got.map((p) => p.type))}`);
    else cuts++;
  }
  t.equal(cuts, stream.length + 1, `every one of the ${stream.length + 1} two-frame cuts gives the six packets`);
  const seed = 24_07;
  const rand = mulberry32(seed);
  for (let round = 0; round < 200; round++) {
    const reader = new codec.PacketReader();
    const got: Packet[] = [];
    for (let i = 0; i < stream.length; ) {
      const n = 1 + Math.floor(rand() * 40);
      got.push(...reader.push(stream.subarray(i, i + n)));
      i += n;
    }
    if (got.length !== 6) t.fail(`random frames (seed ${seed}, round ${round}): ${got.length} packets`);
  }
  t.pass(`200 random frame cuttings (seed ${seed}) give the six packets`);
});

t.test('decoding: malformed, unexpected and oversized packets are errors', async (t) => {
  const cases: Array<[string, number[] | Buffer, string]> = [
    ['a fifth remaining-length byte', [0x30, 0xff, 0xff, 0xff, 0xff, 0x01], 'MALFORMED_PACKET'],
    ['PUBLISH with QoS 3', [0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01], 'MALFORMED_PACKET'],
    ['CONNACK of 3 bytes', [0x20, 0x03, 0x00, 0x00, 0x00], 'MALFORMED_PACKET'],
    ['CONNACK with flags', [0x21, 0x02, 0x00, 0x00], 'MALFORMED_PACKET'],
    ['CONNACK reserved acknowledge bits', [0x20, 0x02, 0x02, 0x00], 'MALFORMED_PACKET'],
    ['reserved type 0', [0x00, 0x00], 'MALFORMED_PACKET'],
    ['reserved type 15', [0xf0, 0x00], 'MALFORMED_PACKET'],
    ['SUBACK return code 3', [0x90, 0x03, 0x00, 0x01, 0x03], 'MALFORMED_PACKET'],
    ['PUBLISH topic not UTF-8', [0x30, 0x04, 0x00, 0x02, 0xff, 0xfe], 'MALFORMED_PACKET'],
    ['PUBLISH topic with a wildcard', publish('outpost/dp/+/value', 'x'), 'MALFORMED_PACKET'],
    ['PUBLISH topic length past the end', [0x30, 0x04, 0x00, 0x09, 0x61, 0x62], 'MALFORMED_PACKET'],
    ['QoS 1 PUBLISH with packet id 0', [0x32, 0x05, 0x00, 0x01, 0x61, 0x00, 0x00], 'MALFORMED_PACKET'],
    ['PINGRESP with a body', [0xd0, 0x01, 0x00], 'MALFORMED_PACKET'],
    ['PUBREL with flags 0000', [0x60, 0x02, 0x00, 0x01], 'MALFORMED_PACKET'],
    ['CONNECT from the server', gen({ cmd: 'connect', clientId: 'x', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 0 }), 'UNEXPECTED_PACKET'],
    ['SUBSCRIBE from the server', [...codec.encodeSubscribe(1, [{ topic: 'a' }])], 'UNEXPECTED_PACKET'],
  ];
  for (const [what, bytes, code] of cases) {
    const reader = new codec.PacketReader();
    const err = errorOf(() => reader.push(Uint8Array.from(bytes)));
    t.equal(err.code, code, `${what}: ${err.message}`);
    t.equal(errorOf(() => reader.push(Uint8Array.from(gen({ cmd: 'pingresp' })))).code, code, `${what}: the reader stays failed`);
  }
  // A packet over the limit is refused from its fixed header, before its body is buffered.
  const reader = new codec.PacketReader({ maxPacketBytes: 1024 });
  t.same(reader.push(Uint8Array.from(publish('outpost/dp/a/value', Buffer.alloc(1000)))).length, 1, 'a packet under the limit passes');
  const big = publish('outpost/dp/a/value', Buffer.alloc(5000));
  const err = errorOf(() => reader.push(big.subarray(0, 3)));
  t.equal(err.code, 'PACKET_TOO_LARGE', err.message);
  t.match(err.message, /5023 bytes, more than the 1024/);
  t.equal(reader.buffered, 0, 'nothing of it was kept');
});

/** A scripted MQTT-over-websocket server: it records what the client sends and answers as the test says. */
async function scriptedServer(t: Test) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : false) });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  const connections: Array<{ ws: WebSocket; packets: mqttPacket.Packet[]; closed: boolean }> = [];
  wss.on('connection', (ws) => {
    const conn = { ws, packets: [] as mqttPacket.Packet[], closed: false };
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on('packet', (p) => conn.packets.push(p));
    ws.on('message', (data: RawData) => parser.parse(data as Buffer));
    ws.on('close', () => (conn.closed = true));
    connections.push(conn);
  });
  t.teardown(() => {
    for (const c of connections) c.ws.terminate();
    return new Promise<void>((resolve) => wss.close(() => resolve()));
  });
  const port = (wss.address() as { port: number }).port;
  return { url: `ws://127.0.0.1:${port}/mqtt`, connections };
}

type Closed = { wasConnected: boolean; error?: Error & { code?: string; returnCode?: number } };

function startClient(t: Test, url: string, extra: Partial<ClientOptions> = {}) {
  const messages: Array<{ topic: string; payload: string; qos?: number }> = [];
  const closes: Closed[] = [];
  let connects = 0;
  const client = new codec.MqttWsClient({
    url,
    clientId: 'dashboardtest',
    WebSocket,
    minBackoffMs: 50,
    maxBackoffMs: 200,
    onConnect: () => connects++,
    onMessage: (topic, payload, p) => messages.push({ topic, payload: Buffer.from(payload).toString('utf8'), qos: p.qos }),
    onClose: (e) => closes.push(e),
    ...extra,
  });
  client.start();
  t.teardown(() => client.stop());
  return { client, messages, closes, connects: () => connects };
}

t.test('client: connect, subscribe, QoS 0 and 1 across frames, PUBACK, DISCONNECT', async (t) => {
  const server = await scriptedServer(t);
  const refused: string[][] = [];
  const c = startClient(t, server.url, { onSubscribeRefused: (f) => refused.push(f) });
  c.client.subscribe(['site7/dp/+/value', 'site7/adapter/+/status']);
  await eventually(async () => server.connections[0]?.packets.length === 1);
  const conn = server.connections[0]!;
  t.match(conn.packets[0], { cmd: 'connect', protocolVersion: 4, clean: true, keepalive: 30, clientId: 'dashboardtest' });
  t.equal(conn.ws.protocol, 'mqtt', 'subprotocol mqtt [MQTT-6.0.0-3]');
  conn.ws.send(gen({ cmd: 'connack', returnCode: 0, sessionPresent: false }));
  await eventually(async () => conn.packets.length === 2);
  const sub = conn.packets[1] as mqttPacket.ISubscribePacket;
  t.match(sub, {
    cmd: 'subscribe',
    subscriptions: [
      { topic: 'site7/dp/+/value', qos: 0 },
      { topic: 'site7/adapter/+/status', qos: 0 },
    ],
  });
  // SUBACK, a QoS 0 and half a QoS 1 PUBLISH in one frame; the rest of it in the next.
  const q1 = publish('site7/dp/b/value', '{"v":2}', { qos: 1, messageId: 77 });
  conn.ws.send(Buffer.concat([gen({ cmd: 'suback', messageId: sub.messageId, granted: [0, 128] }), publish('site7/dp/a/value', '{"v":1}'), q1.subarray(0, 5)]));
  conn.ws.send(q1.subarray(5));
  await eventually(async () => c.messages.length === 2 && conn.packets.length === 3);
  t.same(c.messages, [
    { topic: 'site7/dp/a/value', payload: '{"v":1}', qos: 0 },
    { topic: 'site7/dp/b/value', payload: '{"v":2}', qos: 1 },
  ]);
  t.match(conn.packets[2], { cmd: 'puback', messageId: 77 }, 'QoS 1 is acknowledged with its packet id (§4.3.2)');
  t.same(refused, [['site7/adapter/+/status']], 'a 0x80 return code is reported with its filter');
  t.ok(c.client.connected);
  c.client.stop();
  await eventually(async () => conn.closed);
  t.match(conn.packets.at(-1), { cmd: 'disconnect' }, 'stop() sends DISCONNECT before closing (§3.14)');
  t.same(c.closes, [], 'no close is reported for our own stop');
});

t.test('client: CONNACK refusals are named; code 1 ends retrying, 5 retries', async (t) => {
  const server = await scriptedServer(t);
  const c = startClient(t, server.url);
  await eventually(async () => server.connections[0]?.packets.length === 1);
  server.connections[0]!.ws.send(gen({ cmd: 'connack', returnCode: 5 }));
  await eventually(async () => c.closes.length === 1);
  t.match(c.closes[0], { wasConnected: false, error: { name: 'ConnectionRefusedError', returnCode: 5, message: /refused by the gateway: not authorized/ } });
  await eventually(async () => server.connections[1]?.packets.length === 1);
  t.pass('not authorized: the client tries again');
  server.connections[1]!.ws.send(gen({ cmd: 'connack', returnCode: 1 }));
  await eventually(async () => c.closes.length === 2);
  t.match(c.closes[1]!.error, { returnCode: 1, message: /unacceptable protocol version/ });
  await new Promise((r) => setTimeout(r, 600));
  t.equal(server.connections.length, 2, 'after "unacceptable protocol version" it does not retry');
  t.equal(c.connects(), 0);
});

t.test('client: an oversized packet or a broken stream drops the connection, which comes back', async (t) => {
  const server = await scriptedServer(t);
  const c = startClient(t, server.url, { maxPacketBytes: 2048 });
  c.client.subscribe(['outpost/dp/+/value']);
  await eventually(async () => server.connections[0]?.packets.length === 1);
  server.connections[0]!.ws.send(gen({ cmd: 'connack', returnCode: 0 }));
  await eventually(async () => c.connects() === 1);
  // Only the fixed header of a 100 kB packet: refused before the body arrives.
  server.connections[0]!.ws.send(publish('outpost/dp/a/value', Buffer.alloc(100_000)).subarray(0, 4));
  await eventually(async () => c.closes.length === 1 && server.connections[0]!.closed);
  t.match(c.closes[0], { wasConnected: true, error: { code: 'PACKET_TOO_LARGE' } });
  await eventually(async () => server.connections[1]?.packets.length === 1);
  server.connections[1]!.ws.send(gen({ cmd: 'connack', returnCode: 0 }));
  await eventually(async () => server.connections[1]!.packets.length === 2);
  t.match(
    server.connections[1]!.packets[1],
    { cmd: 'subscribe', subscriptions: [{ topic: 'outpost/dp/+/value' }] },
    're-subscribed after reconnecting (clean session)',
  );
  server.connections[1]!.ws.send('not binary');
  await eventually(async () => c.closes.length === 2);
  t.match(c.closes[1]!.error, { code: 'NOT_BINARY' }, 'a text frame closes the connection [MQTT-6.0.0-1]');
  await eventually(async () => server.connections[2]?.packets.length === 1);
  server.connections[2]!.ws.send(publish('outpost/dp/a/value', '1'));
  await eventually(async () => c.closes.length === 3);
  t.match(c.closes[2]!.error, { code: 'UNEXPECTED_PACKET', message: /before CONNACK/ });
});

t.test('client: PINGREQ every keepalive, closes when no PINGRESP comes', async (t) => {
  const server = await scriptedServer(t);
  const c = startClient(t, server.url, { keepaliveSeconds: 1 });
  await eventually(async () => server.connections[0]?.packets.length === 1);
  const conn = server.connections[0]!;
  conn.ws.send(gen({ cmd: 'connack', returnCode: 0 }));
  await eventually(async () => conn.packets.length === 2, 5000);
  t.match(conn.packets[1], { cmd: 'pingreq' }, 'PINGREQ when nothing else was sent [MQTT-3.1.2-23]');
  conn.ws.send(gen({ cmd: 'pingresp' }));
  await eventually(async () => conn.packets.length === 3, 5000);
  t.match(conn.packets[2], { cmd: 'pingreq' }, 'and again one keepalive later');
  // No PINGRESP this time: the connection is dead for the client.
  await eventually(async () => conn.closed, 5000);
  t.match(c.closes[0], { wasConnected: true });
  t.notOk(c.closes[0]!.error, 'a dead connection is not a protocol error');
  await eventually(async () => server.connections.length === 2, 5000);
  t.pass('and it reconnects');
});
