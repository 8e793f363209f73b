/**
 * MQTT 3.1.1 malformed-packet strictness (runtime/broker/packet-rules.ts), on the wire: each
 * case's raw bytes go over TCP to a real in-process gateway AND to a real Mosquitto started
 * here, and we must answer as Mosquitto does (first packet back, and whether the connection
 * is closed), except where noted with the reason. A refusal must also show up in the
 * gateway's warn log with the rule's reason, so each refusal case fails without its rule even
 * where Aedes or mqtt-packet used to close the connection too (only silently).
 *
 * Meanwhile a well-behaved MQTT.js client publishes and receives at QoS 1 beside them: it
 * keeps its connection and every message, and the gateway logs no error.
 *
 * Raw bytes on purpose: MQTT.js and mqtt-packet refuse to build most of these packets.
 */
import t from 'tap';
import mqtt from 'mqtt';
import { connect as netConnect } from 'node:net';
import { eventually, startTestGateway } from '../helpers/gateway.js';
import { Mosquitto } from '../sync/helpers/mosquitto.js';

import { bytes, connectPacket, field, packet, u16, type ConnectFields } from '../helpers/mqtt-bytes.js';

let clientIds = 0;
const freshId = (): string => `strict-${process.pid}-${++clientIds}`;

/** CONNECT with the payload fields its flags announce, a fresh client id unless given (the broker is real). */
const connect = (f: ConnectFields = {}): Buffer => connectPacket({ ...f, clientId: f.clientId ?? freshId() });
const publish = (topic: Buffer | string, qos: 0 | 1 | 2 = 1, id = 7): Buffer =>
  packet(0x30 | (qos << 1), field(topic), qos > 0 ? u16(id) : Buffer.alloc(0), Buffer.from('x'));
const subscribe = (filters: Array<Buffer | string>, id = 1): Buffer => packet(0x82, u16(id), ...filters.flatMap((f) => [field(f), Buffer.from([0])]));
const unsubscribe = (filters: Array<Buffer | string>, id = 1): Buffer => packet(0xa2, u16(id), ...filters.map((f) => field(f)));

const NOT_UTF8 = Buffer.from([0xc3, 0x28]);
const OVERLONG_SLASH = Buffer.from([0xc0, 0xaf]);
const SURROGATE = Buffer.from([0xed, 0xa0, 0x80]);
const TRUNCATED_EURO = Buffer.from([0xe2, 0x82]);
const LONE_FF = Buffer.from([0xff]);

/** What a server did with the case: the first packet it sent back (hex, '' for none), and whether it closed the connection. */
interface Answer {
  first: string;
  closed: boolean;
}
const CLOSED: Answer = { first: '', closed: true };
const connack = (code: number): Answer => ({ first: `200200${code.toString(16).padStart(2, '0')}`, closed: code !== 0 });
const stays = (first = ''): Answer => ({ first, closed: false });
const show = (a: Answer): string => `${a.first || 'nothing'}, ${a.closed ? 'closed' : 'open'}`;

interface Case {
  name: string;
  /** Sent as the first bytes of the connection (true) or after a CONNECT that got CONNACK 0. */
  first: boolean;
  bytes: Buffer;
  /** Our answer. */
  ours: Answer;
  /** The refusal's reason in the gateway log; absent for a packet that must pass. */
  reason?: RegExp;
  /** Where we deliberately answer differently from Mosquitto: what Mosquitto does, and why. */
  differs?: { mosquitto: (a: Answer) => boolean; mosquittoDoes: string; why: string };
}

const MUST_CLOSE =
  '§2.2.2 [MQTT-2.2.2-2]: the receiver MUST close the connection on invalid fixed-header flags (mqtt-packet already closed it; now the log says why)';
const CONTROL_CHARACTERS =
  '§1.5.3 says a string SHOULD NOT contain control characters or non-characters and a receiver MAY close on them, not MUST: they are valid UTF-8, harmless to the topic tree and storage, and refusing them would cut off devices that work with the gateway today';

const cases: Case[] = [
  // CONNECT: what must pass.
  { name: 'CONNECT "MQTT" level 4', first: true, bytes: connect(), ours: connack(0) },
  { name: 'CONNECT "MQIsdp" level 3 (MQTT 3.1)', first: true, bytes: connect({ name: 'MQIsdp', level: 3 }), ours: connack(0) },
  { name: 'CONNECT level 4 with the bridge bit (0x84)', first: true, bytes: connect({ level: 0x84 }), ours: connack(0) },
  { name: 'CONNECT client id with multi-byte UTF-8 and a real U+FFFD', first: true, bytes: connect({ clientId: `é€😀\ufffd-${freshId()}` }), ours: connack(0) },
  {
    name: 'CONNECT with a will, QoS 2, retained, topic "strictness/é"',
    first: true,
    bytes: connect({ flags: 0x36, willTopic: 'strictness/é' }),
    ours: connack(0),
  },
  { name: 'CONNECT empty client id, clean session', first: true, bytes: connect({ clientId: '' }), ours: connack(0) },
  // CONNECT: protocol name and level (§3.1.2.1, §3.1.2.2).
  {
    name: 'CONNECT "MQIsdp" level 4',
    first: true,
    bytes: connect({ name: 'MQIsdp', level: 4 }),
    ours: connack(1),
    reason: /"MQIsdp" and level 4: .*§3\.1\.2\.2/,
  },
  { name: 'CONNECT "MQTT" level 3', first: true, bytes: connect({ level: 3 }), ours: connack(1), reason: /"MQTT" and level 3/ },
  { name: 'CONNECT "MQTT" level 6', first: true, bytes: connect({ level: 6 }), ours: connack(1), reason: /"MQTT" and level 6/ },
  { name: 'CONNECT "MQTT" level 0', first: true, bytes: connect({ level: 0 }), ours: connack(1), reason: /"MQTT" and level 0/ },
  { name: 'CONNECT "MQIsdp" level 6', first: true, bytes: connect({ name: 'MQIsdp', level: 6 }), ours: connack(1), reason: /"MQIsdp" and level 6/ },
  {
    name: 'CONNECT "MQTT" level 5 (MQTT 5)',
    first: true,
    bytes: connect({ level: 5 }),
    ours: connack(1),
    reason: /MQTT 5 .*only MQTT 3\.1\.1 and 3\.1 are supported/,
    differs: {
      mosquitto: (a) => a.first.startsWith('20') && a.first.slice(4, 8) === '0000' && !a.closed,
      mosquittoDoes: 'accepts it: an MQTT 5 CONNACK with reason code 0',
      why: 'Aedes 1.2 speaks MQTT 3.1 and 3.1.1 only; CONNACK 0x01 (unacceptable protocol level, §3.1.2.2) is the 3.1.1 answer, on which MQTT 5 clients fall back to 3.1.1',
    },
  },
  { name: 'CONNECT protocol name "MQTX"', first: true, bytes: connect({ name: 'MQTX' }), ours: CLOSED, reason: /unknown protocol name, .*§3\.1\.2\.1/ },
  // CONNECT: flags (§3.1.2.3-§3.1.2.9).
  { name: 'CONNECT reserved flag bit 0 set', first: true, bytes: connect({ flags: 0x03 }), ours: CLOSED, reason: /reserved flag bit 0 .*\[MQTT-3\.1\.2-3\]/ },
  { name: 'CONNECT will flag 0 with will QoS 1', first: true, bytes: connect({ flags: 0x0a }), ours: CLOSED, reason: /will QoS 1 without the will flag/ },
  { name: 'CONNECT will flag 0 with will retain', first: true, bytes: connect({ flags: 0x22 }), ours: CLOSED, reason: /will retain without the will flag/ },
  { name: 'CONNECT will QoS 3', first: true, bytes: connect({ flags: 0x1e }), ours: CLOSED, reason: /will QoS 3 .*\[MQTT-3\.1\.2-14\]/ },
  {
    name: 'CONNECT password flag without user name flag',
    first: true,
    bytes: connect({ flags: 0x42 }),
    ours: CLOSED,
    reason: /password flag without the user name flag .*§3\.1\.2\.9/,
  },
  // CONNECT: UTF-8 strings (§1.5.3) and the will topic as a topic name.
  {
    name: 'CONNECT client id ill-formed UTF-8 (C3 28)',
    first: true,
    bytes: connect({ clientId: bytes('id-', NOT_UTF8) }),
    ours: CLOSED,
    reason: /client identifier is not valid UTF-8 .*§1\.5\.3/,
  },
  {
    name: 'CONNECT client id with an overlong "/" (C0 AF)',
    first: true,
    bytes: connect({ clientId: bytes('id', OVERLONG_SLASH) }),
    ours: CLOSED,
    reason: /client identifier is not valid UTF-8/,
  },
  {
    name: 'CONNECT client id with a surrogate (ED A0 80)',
    first: true,
    bytes: connect({ clientId: bytes('id', SURROGATE) }),
    ours: CLOSED,
    reason: /client identifier is not valid UTF-8/,
  },
  {
    name: 'CONNECT client id with U+0000',
    first: true,
    bytes: connect({ clientId: bytes('id', [0]) }),
    ours: CLOSED,
    reason: /client identifier contains U\+0000 .*\[MQTT-1\.5\.3-2\]/,
  },
  {
    name: 'CONNECT client id with U+0001',
    first: true,
    bytes: connect({ clientId: bytes('id', [1], freshId()) }),
    ours: connack(0),
    differs: { mosquitto: (a) => a.closed && a.first === '', mosquittoDoes: 'closes the connection', why: CONTROL_CHARACTERS },
  },
  {
    name: 'CONNECT user name ill-formed UTF-8',
    first: true,
    bytes: connect({ flags: 0x82, user: bytes('u', NOT_UTF8) }),
    ours: CLOSED,
    reason: /user name is not valid UTF-8/,
  },
  {
    name: 'CONNECT user name with U+0000',
    first: true,
    bytes: connect({ flags: 0x82, user: bytes('u', [0]) }),
    ours: CLOSED,
    reason: /user name contains U\+0000/,
  },
  {
    name: 'CONNECT will topic ill-formed UTF-8',
    first: true,
    bytes: connect({ flags: 0x06, willTopic: bytes('w/', LONE_FF) }),
    ours: CLOSED,
    reason: /will topic is not valid UTF-8/,
  },
  {
    name: 'CONNECT will topic with U+0000',
    first: true,
    bytes: connect({ flags: 0x06, willTopic: bytes('w/', [0]) }),
    ours: CLOSED,
    reason: /will topic contains U\+0000/,
  },
  {
    name: 'CONNECT will topic "w/+"',
    first: true,
    bytes: connect({ flags: 0x06, willTopic: 'w/+' }),
    ours: CLOSED,
    reason: /will topic contains the wildcard '\+'/,
  },
  {
    name: 'CONNECT will topic "w/#"',
    first: true,
    bytes: connect({ flags: 0x06, willTopic: 'w/#' }),
    ours: CLOSED,
    reason: /will topic contains the wildcard '#'/,
  },
  { name: 'CONNECT empty will topic', first: true, bytes: connect({ flags: 0x06, willTopic: '' }), ours: CLOSED, reason: /will topic is empty .*§4\.7\.3/ },
  // CONNECT: payload, client id rules, order of packets.
  {
    name: 'CONNECT with 3 bytes after the last field',
    first: true,
    bytes: connect({ trailing: Buffer.from([1, 2, 3]) }),
    ours: CLOSED,
    reason: /3 byte\(s\) after its last payload field .*§3\.1\.3/,
  },
  {
    name: 'CONNECT "MQIsdp" level 3 with an empty client id',
    first: true,
    bytes: connect({ name: 'MQIsdp', level: 3, clientId: '' }),
    ours: connack(2),
    reason: /MQTT 3\.1 CONNECT with an empty client identifier/,
  },
  {
    name: 'CONNECT with fixed-header flags 0001',
    first: true,
    bytes: Buffer.from([0x11, ...connect().subarray(1)]),
    ours: CLOSED,
    reason: /CONNECT with fixed-header flags 0001, must be 0000/,
  },
  { name: 'PUBLISH before CONNECT', first: true, bytes: publish('a/b'), ours: CLOSED, reason: /first packet is PUBLISH, not CONNECT .*\[MQTT-3\.1\.0-1\]/ },
  { name: 'a second CONNECT', first: false, bytes: connect(), ours: CLOSED, reason: /second CONNECT .*\[MQTT-3\.1\.0-2\]/ },

  // PUBLISH: what must pass.
  { name: 'PUBLISH QoS 1 to "é/€/😀"', first: false, bytes: publish('é/€/😀'), ours: stays('40020007') },
  { name: 'PUBLISH QoS 1 to a topic with a real U+FFFD (EF BF BD)', first: false, bytes: publish('a/\ufffd'), ours: stays('40020007') },
  { name: 'PUBLISH QoS 2', first: false, bytes: publish('a/b', 2, 9), ours: stays('50020009') },
  { name: 'PUBLISH QoS 0', first: false, bytes: publish('a/b', 0), ours: stays() },
  // PUBLISH: topic (§1.5.3, §4.7), QoS and packet identifier (§2.3.1).
  {
    name: 'PUBLISH topic ill-formed UTF-8 (C3 28)',
    first: false,
    bytes: publish(bytes('a/', NOT_UTF8)),
    ours: CLOSED,
    reason: /^PUBLISH topic is not valid UTF-8 \(MQTT 3\.1\.1 §1\.5\.3/,
  },
  { name: 'PUBLISH topic with a lone FF', first: false, bytes: publish(bytes('a/', LONE_FF)), ours: CLOSED, reason: /PUBLISH topic is not valid UTF-8/ },
  {
    name: 'PUBLISH topic with an overlong "/"',
    first: false,
    bytes: publish(bytes('a', OVERLONG_SLASH, 'b')),
    ours: CLOSED,
    reason: /PUBLISH topic is not valid UTF-8/,
  },
  { name: 'PUBLISH topic with a surrogate', first: false, bytes: publish(bytes('a/', SURROGATE)), ours: CLOSED, reason: /PUBLISH topic is not valid UTF-8/ },
  {
    name: 'PUBLISH topic with a truncated "€"',
    first: false,
    bytes: publish(bytes('a/', TRUNCATED_EURO)),
    ours: CLOSED,
    reason: /PUBLISH topic is not valid UTF-8/,
  },
  {
    name: 'PUBLISH topic with U+0000',
    first: false,
    bytes: publish(bytes('a/', [0], 'b')),
    ours: CLOSED,
    reason: /PUBLISH topic contains U\+0000 .*\[MQTT-1\.5\.3-2\]/,
  },
  {
    name: 'PUBLISH topic with a tab (U+0009)',
    first: false,
    bytes: publish('a/\tb'),
    ours: stays('40020007'),
    differs: { mosquitto: (a) => a.closed && a.first === '', mosquittoDoes: 'closes the connection', why: CONTROL_CHARACTERS },
  },
  {
    name: 'PUBLISH QoS 1 with packet id 0',
    first: false,
    bytes: publish('a/b', 1, 0),
    ours: CLOSED,
    reason: /PUBLISH QoS 1 with packet identifier 0 .*§2\.3\.1/,
  },
  { name: 'PUBLISH QoS 2 with packet id 0', first: false, bytes: publish('a/b', 2, 0), ours: CLOSED, reason: /PUBLISH QoS 2 with packet identifier 0/ },
  {
    name: 'PUBLISH QoS 1 without a packet id',
    first: false,
    bytes: packet(0x32, field('a/b')),
    ours: CLOSED,
    reason: /PUBLISH QoS 1 without its packet identifier/,
  },
  { name: 'PUBLISH QoS 3', first: false, bytes: Buffer.from([0x36, ...publish('a/b').subarray(1)]), ours: CLOSED, reason: /PUBLISH with QoS 3 .*§3\.3\.1\.2/ },
  { name: 'PUBLISH to an empty topic', first: false, bytes: publish(''), ours: CLOSED, reason: /PUBLISH topic is empty .*§4\.7\.3/ },
  { name: 'PUBLISH to "a/+"', first: false, bytes: publish('a/+'), ours: CLOSED, reason: /PUBLISH topic contains the wildcard '\+' .*§3\.3\.2\.1/ },
  { name: 'PUBLISH to "a/#"', first: false, bytes: publish('a/#'), ours: CLOSED, reason: /PUBLISH topic contains the wildcard '#'/ },

  // SUBSCRIBE: what must pass (SUBACK first; retained messages may follow it).
  {
    name: 'SUBSCRIBE "a/+/b", "#", "$SYS/#", "é/€/😀", "+/+", "/+/", "a/+/#"',
    first: false,
    bytes: subscribe(['a/+/b', '#', '$SYS/#', 'é/€/😀', '+/+', '/+/', 'a/+/#']),
    ours: stays(`90090001${'00'.repeat(7)}`),
  },
  // SUBSCRIBE: wildcard placement (§4.7.1), UTF-8, packet id, at least one filter, flags, options.
  ...['a+/b', 'a/+b', 'a+', '+a'].map(
    (filter): Case => ({
      name: `SUBSCRIBE "${filter}"`,
      first: false,
      bytes: subscribe([filter]),
      ours: CLOSED,
      reason: /has '\+' other than as a whole level .*§4\.7\.1\.3/,
    }),
  ),
  ...['a#', 'a/#/b', '#/a'].map(
    (filter): Case => ({
      name: `SUBSCRIBE "${filter}"`,
      first: false,
      bytes: subscribe([filter]),
      ours: CLOSED,
      reason: /has '#' other than as the whole last level .*§4\.7\.1\.2/,
    }),
  ),
  { name: 'SUBSCRIBE "a/b" and "a+/b" in one packet', first: false, bytes: subscribe(['a/b', 'a+/b']), ours: CLOSED, reason: /"a\+\/b" has '\+'/ },
  {
    name: 'SUBSCRIBE filter ill-formed UTF-8',
    first: false,
    bytes: subscribe([bytes('a/', NOT_UTF8)]),
    ours: CLOSED,
    reason: /SUBSCRIBE topic filter is not valid UTF-8/,
  },
  {
    name: 'SUBSCRIBE filter with an overlong "/"',
    first: false,
    bytes: subscribe([bytes('a', OVERLONG_SLASH, 'b')]),
    ours: CLOSED,
    reason: /SUBSCRIBE topic filter is not valid UTF-8/,
  },
  { name: 'SUBSCRIBE filter with U+0000', first: false, bytes: subscribe([bytes('a/', [0])]), ours: CLOSED, reason: /SUBSCRIBE topic filter contains U\+0000/ },
  { name: 'SUBSCRIBE empty filter', first: false, bytes: subscribe(['']), ours: CLOSED, reason: /SUBSCRIBE topic filter is empty/ },
  { name: 'SUBSCRIBE with packet id 0', first: false, bytes: subscribe(['a/b'], 0), ours: CLOSED, reason: /SUBSCRIBE with packet identifier 0/ },
  {
    name: 'SUBSCRIBE with no topic filter',
    first: false,
    bytes: packet(0x82, u16(1)),
    ours: CLOSED,
    reason: /SUBSCRIBE without a topic filter .*\[MQTT-3\.8\.3-3\]/,
  },
  {
    name: 'SUBSCRIBE with fixed-header flags 0000',
    first: false,
    bytes: Buffer.from([0x80, ...subscribe(['a/b']).subarray(1)]),
    ours: CLOSED,
    reason: /SUBSCRIBE with fixed-header flags 0000, must be 0010/,
  },
  {
    name: 'SUBSCRIBE requesting QoS 3',
    first: false,
    bytes: packet(0x82, u16(1), field('a/b'), Buffer.from([3])),
    ours: CLOSED,
    reason: /requested QoS byte 3/,
  },

  // UNSUBSCRIBE.
  { name: 'UNSUBSCRIBE "a/+/#"', first: false, bytes: unsubscribe(['a/+/#']), ours: stays('b0020001') },
  { name: 'UNSUBSCRIBE "a+/b"', first: false, bytes: unsubscribe(['a+/b']), ours: CLOSED, reason: /UNSUBSCRIBE topic filter "a\+\/b" has '\+'/ },
  {
    name: 'UNSUBSCRIBE filter ill-formed UTF-8',
    first: false,
    bytes: unsubscribe([bytes('a/', NOT_UTF8)]),
    ours: CLOSED,
    reason: /UNSUBSCRIBE topic filter is not valid UTF-8/,
  },
  {
    name: 'UNSUBSCRIBE filter with U+0000',
    first: false,
    bytes: unsubscribe([bytes('a/', [0])]),
    ours: CLOSED,
    reason: /UNSUBSCRIBE topic filter contains U\+0000/,
  },
  { name: 'UNSUBSCRIBE with packet id 0', first: false, bytes: unsubscribe(['a/b'], 0), ours: CLOSED, reason: /UNSUBSCRIBE with packet identifier 0/ },
  {
    name: 'UNSUBSCRIBE with no topic filter',
    first: false,
    bytes: packet(0xa2, u16(1)),
    ours: CLOSED,
    reason: /UNSUBSCRIBE without a topic filter .*\[MQTT-3\.10\.3-2\]/,
  },
  {
    name: 'UNSUBSCRIBE with fixed-header flags 0000',
    first: false,
    bytes: Buffer.from([0xa0, ...unsubscribe(['a/b']).subarray(1)]),
    ours: CLOSED,
    reason: /UNSUBSCRIBE with fixed-header flags 0000/,
  },

  // PUBACK, PUBREC, PUBREL, PUBCOMP.
  { name: 'PUBREL packet id 1', first: false, bytes: Buffer.from([0x62, 0x02, 0x00, 0x01]), ours: stays('70020001') },
  ...(
    [
      [0x40, 'PUBACK'],
      [0x50, 'PUBREC'],
      [0x62, 'PUBREL'],
      [0x70, 'PUBCOMP'],
    ] as const
  ).map(
    ([type, name]): Case => ({
      name: `${name} with packet id 0`,
      first: false,
      bytes: Buffer.from([type, 0x02, 0x00, 0x00]),
      ours: CLOSED,
      reason: new RegExp(`^${name} with packet identifier 0 .*§2\\.3\\.1`),
    }),
  ),
  {
    name: 'PUBACK with remaining length 1',
    first: false,
    bytes: Buffer.from([0x40, 0x01, 0x00]),
    ours: CLOSED,
    reason: /PUBACK without its packet identifier/,
  },
  { name: 'PUBREL with remaining length 0', first: false, bytes: Buffer.from([0x62, 0x00]), ours: CLOSED, reason: /PUBREL without its packet identifier/ },
  {
    name: 'PUBREL with fixed-header flags 0000',
    first: false,
    bytes: Buffer.from([0x60, 0x02, 0x00, 0x01]),
    ours: CLOSED,
    reason: /PUBREL with fixed-header flags 0000, must be 0010 .*§2\.2\.2/,
  },

  // Other packet types.
  { name: 'PINGREQ', first: false, bytes: Buffer.from([0xc0, 0x00]), ours: stays('d000') },
  {
    name: 'PINGREQ with fixed-header flags 0001',
    first: false,
    bytes: Buffer.from([0xc1, 0x00]),
    ours: CLOSED,
    reason: /PINGREQ with fixed-header flags 0001/,
    differs: { mosquitto: (a) => a.first === 'd000' && !a.closed, mosquittoDoes: 'answers PINGRESP and keeps the connection', why: MUST_CLOSE },
  },
  {
    name: 'SUBACK from a client',
    first: false,
    bytes: Buffer.from([0x90, 0x03, 0x00, 0x01, 0x00]),
    ours: CLOSED,
    reason: /SUBACK is a server-to-client packet .*§2\.2\.1/,
    differs: {
      mosquitto: (a) => a.first === '' && !a.closed,
      mosquittoDoes: 'ignores it and keeps the connection',
      why: 'only a server sends SUBACK (§2.2.1); Aedes already closed the connection, now the log says why',
    },
  },
  { name: 'reserved packet type 0', first: false, bytes: Buffer.from([0x00, 0x00]), ours: CLOSED, reason: /packet type 0 is reserved/ },
];

/** The first complete packet in `bytes` (type byte, remaining length, body), in hex. */
function firstPacket(bytes: Buffer): string {
  let i = 1;
  let length = 0;
  let multiplier = 1;
  for (; i < bytes.length && i <= 4; i++) {
    length += (bytes[i]! & 0x7f) * multiplier;
    multiplier *= 128;
    if ((bytes[i]! & 0x80) === 0) break;
  }
  return bytes.subarray(0, i + 1 + length).toString('hex');
}

/**
 * Sends the case on a fresh connection (after a CONNECT that got CONNACK 0 unless it is the
 * first packet) and reports what came back. A close is waited for up to 1.5 s; a connection
 * expected to stay open is watched for 400 ms.
 */
async function answer(port: number, c: Case): Promise<Answer> {
  const socket = netConnect({ host: '127.0.0.1', port });
  socket.on('error', () => undefined); // a refused connection may be reset; the bytes before it are what counts
  let received = Buffer.alloc(0);
  let closed = false;
  const closedP = new Promise<void>((resolve) =>
    socket.once('close', () => {
      closed = true;
      resolve();
    }),
  );
  socket.on('data', (d: Buffer) => (received = Buffer.concat([received, d])));
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  try {
    if (!c.first) {
      socket.write(connect());
      await eventually(() => received.length >= 4 || closed, 3000);
      if (received.toString('hex') !== '20020000') throw new Error(`the session CONNECT got ${received.toString('hex') || 'nothing'}`);
      received = Buffer.alloc(0);
    }
    socket.write(c.bytes);
    await Promise.race([closedP, new Promise((resolve) => setTimeout(resolve, c.ours.closed ? 1500 : 400))]);
    return { first: received.length > 0 ? firstPacket(received) : '', closed };
  } finally {
    socket.destroy();
  }
}

t.test('malformed packets get the answer Mosquitto gives; other clients are unaffected', async (t) => {
  const mosquitto = await Mosquitto.create(t);
  const gw = await startTestGateway(t, { log: { level: 'warn' } });
  const port = Number(new URL(gw.mqttUrl).port);

  // The well-behaved client beside the hostile connections: QoS 1 out and back, all along.
  const witness = await mqtt.connectAsync(gw.mqttUrl, { clientId: 'strictness-witness', reconnectPeriod: 0, connectTimeout: 5000 });
  t.teardown(() => witness.endAsync(true));
  let witnessCloses = 0;
  witness.on('close', () => witnessCloses++);
  const received = new Set<number>();
  witness.on('message', (_topic, payload) => received.add(Number(payload.toString())));
  await witness.subscribeAsync('strictness/witness', { qos: 1 });
  const acked: number[] = [];
  let sent = 0;
  let publishing = Promise.resolve();
  const timer = setInterval(() => {
    const n = ++sent;
    publishing = publishing.then(() => witness.publishAsync('strictness/witness', String(n), { qos: 1 }).then(() => void acked.push(n)));
  }, 25);

  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const logged = gw.logs.length;
      const [theirs, ours] = await Promise.all([answer(mosquitto.port, c), answer(port, c)]);
      t.same(ours, c.ours, `we answer: ${show(c.ours)}`);
      if (c.differs) t.ok(c.differs.mosquitto(theirs), `Mosquitto ${c.differs.mosquittoDoes} (${show(theirs)}); we deliberately differ: ${c.differs.why}`);
      else t.same(ours, theirs, `as Mosquitto does (${show(theirs)})`);
      const refusals = (): Array<Record<string, unknown>> => gw.logs.slice(logged).filter((l) => l.msg === 'MQTT protocol violation: connection dropped');
      if (c.reason) {
        await eventually(() => refusals().length > 0, 2000).catch(() => false);
        t.match(String(refusals()[0]?.reason), c.reason, 'refused by the rule, its reason in the warn log');
      } else {
        t.same(refusals(), [], 'no protocol violation logged');
      }
    });
  }

  clearInterval(timer);
  await publishing;
  await eventually(() => acked.every((n) => received.has(n)), 5000).catch(() => false);
  t.equal(witnessCloses, 0, 'the witness kept its one connection throughout');
  t.ok(witness.connected, 'and is still connected');
  t.ok(acked.length >= 20 && acked.length === sent, `the witness got all ${sent} QoS 1 publications acknowledged`);
  t.same(
    acked.filter((n) => !received.has(n)),
    [],
    'and each was delivered back to it',
  );
  t.same(
    gw.logs.filter((l) => Number(l.level) >= 50),
    [],
    'the gateway logged no error',
  );
});
