/**
 * packetViolation (runtime/broker/packet-rules.ts): the MQTT 3.1.1 malformed-packet rules
 * checked on raw bytes before Aedes sees a packet. Well-formed packets come from mqtt-packet's
 * `generate`; the malformed ones are built byte by byte, since mqtt-packet refuses to write them.
 */
import t, { type Test } from 'tap';
import { generate, type Packet } from 'mqtt-packet';
import { packetViolation } from '../../runtime/broker/packet-rules.js';

import { bytes, connectPacket, field, packet, u16 } from '../helpers/mqtt-bytes.js';

const connect = connectPacket;
const publish = (topic: Buffer | string, qos: 0 | 1 | 2 = 0, id = 1): Buffer =>
  packet(0x30 | (qos << 1), field(topic), qos > 0 ? u16(id) : Buffer.alloc(0), Buffer.from('payload'));
const subscribe = (filters: Array<Buffer | string>, id = 1): Buffer => packet(0x82, u16(id), ...filters.flatMap((f) => [field(f), Buffer.from([1])]));
const unsubscribe = (filters: Array<Buffer | string>, id = 1): Buffer => packet(0xa2, u16(id), ...filters.map((f) => field(f)));

const NOT_UTF8 = Buffer.from([0xc3, 0x28]); // a lead byte followed by a non-continuation byte
const OVERLONG_SLASH = Buffer.from([0xc0, 0xaf]);
const SURROGATE = Buffer.from([0xed, 0xa0, 0x80]); // U+D800
const TRUNCATED_EURO = Buffer.from([0xe2, 0x82]);
const LONE_FF = Buffer.from([0xff]);

/** Asserts the packet passes, whether first (CONNECT) or later on the connection. */
function passes(t: Test, p: Buffer, first: boolean, what: string): void {
  t.equal(packetViolation(p, first), undefined, `${what} passes`);
}
/** Asserts a refusal whose reason matches, with the CONNACK code when one is sent. */
function refused(t: Test, p: Buffer, first: boolean, reason: RegExp, connackReturnCode?: number): void {
  const v = packetViolation(p, first);
  t.ok(v, `refused: ${reason}`);
  if (!v) return;
  t.match(v.reason, reason, v.reason);
  t.match(v.reason, /MQTT 3\.1(\.1)? §\d/, 'the reason cites the spec section');
  t.equal(v.connackReturnCode, connackReturnCode, connackReturnCode === undefined ? 'closed without a CONNACK' : `CONNACK ${connackReturnCode} first`);
}

t.test('well-formed packets from mqtt-packet pass', async (t) => {
  const later: Packet[] = [
    { cmd: 'publish', topic: 'a/b', payload: Buffer.from('x'), qos: 0, retain: false, dup: false },
    { cmd: 'publish', topic: 'site/meter-1/power', payload: Buffer.from('{"v":1}'), qos: 1, messageId: 1, retain: true, dup: false },
    { cmd: 'publish', topic: 'a/b', payload: Buffer.alloc(300), qos: 2, messageId: 65535, retain: false, dup: true },
    { cmd: 'publish', topic: 'é/€/😀', payload: Buffer.from('x'), qos: 1, messageId: 7, retain: false, dup: false },
    { cmd: 'publish', topic: 'a/\ufffd', payload: Buffer.from('x'), qos: 1, messageId: 7, retain: false, dup: false },
    { cmd: 'publish', topic: '/', payload: Buffer.alloc(0), qos: 0, retain: false, dup: false },
    { cmd: 'publish', topic: '$SYS/x', payload: Buffer.from('x'), qos: 0, retain: false, dup: false },
    { cmd: 'publish', topic: 'x'.repeat(65_535), payload: Buffer.alloc(20_000), qos: 1, messageId: 3, retain: false, dup: false },
    {
      cmd: 'subscribe',
      messageId: 1,
      subscriptions: ['#', '+', 'a/+/b', 'a/#', '+/+', '/+/', '/#', '+/#', 'a/+/#', '$SYS/#', 'é/€/😀', '//', '$share/g/a'].map((topic) => ({
        topic,
        qos: 1 as const,
      })),
    },
    { cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['#', 'a/+/b', '$SYS/#', 'é/+'] },
    { cmd: 'puback', messageId: 1 },
    { cmd: 'pubrec', messageId: 2 },
    { cmd: 'pubrel', messageId: 3 },
    { cmd: 'pubcomp', messageId: 4 },
    { cmd: 'pingreq' },
    { cmd: 'disconnect' },
  ];
  for (const p of later) passes(t, generate(p), false, `${p.cmd} ${'topic' in p ? JSON.stringify(p.topic.slice(0, 20)) : ''}`);
  const connects: Packet[] = [
    { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'meter-1', keepalive: 60 },
    { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: '', keepalive: 0 },
    {
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clean: false,
      clientId: 'é€😀',
      keepalive: 60,
      username: 'ü',
      password: Buffer.from([0, 0xff, 0]),
    },
    {
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clean: true,
      clientId: 'w',
      keepalive: 60,
      will: { topic: 'site/w/status', payload: Buffer.from('offline'), qos: 2, retain: true },
    },
    { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'u', keepalive: 60, username: 'user' },
    { cmd: 'connect', protocolId: 'MQIsdp', protocolVersion: 3, clean: true, clientId: 'old-client', keepalive: 60 },
  ];
  for (const p of connects) passes(t, generate(p), true, `CONNECT ${JSON.stringify(p)}`);
  passes(t, connect({ level: 0x84 }), true, 'CONNECT level 4 with the bridge bit (Mosquitto and Aedes accept it from bridges)');
  passes(t, connect({ name: 'MQIsdp', level: 0x83 }), true, 'MQIsdp level 3 with the bridge bit');
  passes(t, connect({ clientId: bytes([0xef, 0xbf, 0xbd]) }), true, 'a client id that is a real U+FFFD (EF BF BD)');
  passes(t, connect({ flags: 0x06, willTopic: 'w/\ufffd' }), true, 'a will topic with U+FFFD');
});

t.test('a packet with a 2- or 3-byte remaining length is read from the right offset', async (t) => {
  passes(t, generate({ cmd: 'publish', topic: 'a/b', payload: Buffer.alloc(200), qos: 1, messageId: 9, retain: false, dup: false }), false, '2-byte length');
  passes(t, generate({ cmd: 'publish', topic: 'a/b', payload: Buffer.alloc(20_000), qos: 1, messageId: 9, retain: false, dup: false }), false, '3-byte length');
  // 1 type byte + 3 length bytes + 2 topic length bytes: "a/b" is at 6..8; its "b" becomes "#".
  refused(
    t,
    generate({ cmd: 'publish', topic: 'a/b', payload: Buffer.alloc(20_000), qos: 0, retain: false, dup: false }).fill(0x23, 8, 9),
    false,
    /PUBLISH topic contains the wildcard '#'/,
  );
  refused(t, packet(0x32, field('a/b'), u16(0), Buffer.alloc(200)), false, /packet identifier 0/);
});

t.test('§3.1 the first packet is CONNECT, and only the first', async (t) => {
  refused(t, publish('a/b'), true, /first packet is PUBLISH, not CONNECT .*§3\.1/);
  refused(t, Buffer.from([0xc0, 0x00]), true, /first packet is PINGREQ/);
  refused(t, connect(), false, /second CONNECT .*\[MQTT-3\.1\.0-2\]/);
});

t.test('§3.1.2.1/§3.1.2.2 protocol name and level', async (t) => {
  refused(t, connect({ name: 'MQIsdp', level: 4 }), true, /"MQIsdp" and level 4/, 1);
  refused(t, connect({ level: 3 }), true, /"MQTT" and level 3/, 1);
  refused(t, connect({ level: 5 }), true, /MQTT 5 .*only MQTT 3\.1\.1 and 3\.1 are supported/, 1);
  refused(t, connect({ level: 0x85 }), true, /MQTT 5/, 1);
  refused(t, connect({ level: 6 }), true, /level 6/, 1);
  refused(t, connect({ level: 0 }), true, /level 0/, 1);
  refused(t, connect({ name: 'MQIsdp', level: 6 }), true, /"MQIsdp" and level 6/, 1);
  refused(t, connect({ name: 'MQTX' }), true, /unknown protocol name, .*§3\.1\.2\.1/);
  refused(t, connect({ name: 'mqtt' }), true, /unknown protocol name/);
  refused(t, connect({ name: Buffer.from('MQTT\0') }), true, /unknown protocol name/);
  refused(t, connect({ name: 'MQIsdpX' }), true, /unknown protocol name/);
});

t.test('§3.1.2.3-§3.1.2.9 connect flags', async (t) => {
  refused(t, connect({ flags: 0x03 }), true, /reserved flag .*\[MQTT-3\.1\.2-3\]/);
  refused(t, connect({ flags: 0x0a }), true, /will QoS 1 without the will flag/);
  refused(t, connect({ flags: 0x12 }), true, /will QoS 2 without the will flag/);
  refused(t, connect({ flags: 0x22 }), true, /will retain without the will flag .*§3\.1\.2\.7/);
  refused(t, connect({ flags: 0x1e }), true, /will QoS 3 .*\[MQTT-3\.1\.2-14\]/);
  refused(t, connect({ flags: 0x42 }), true, /password flag without the user name flag .*§3\.1\.2\.9/);
  refused(t, connect({ name: 'MQIsdp', level: 3, flags: 0x42 }), true, /password flag without the user name flag/);
  passes(t, connect({ flags: 0xc2 }), true, 'user name and password');
  passes(t, connect({ flags: 0x36 }), true, 'will flag, will QoS 2, will retain');
});

t.test('§1.5.3 UTF-8 strings in CONNECT: client id, will topic, user name', async (t) => {
  for (const bad of [NOT_UTF8, OVERLONG_SLASH, SURROGATE, TRUNCATED_EURO, LONE_FF]) {
    refused(t, connect({ clientId: bytes('id-', bad) }), true, /client identifier is not valid UTF-8 .*§1\.5\.3/);
    refused(t, connect({ flags: 0x06, willTopic: bytes('w/', bad) }), true, /will topic is not valid UTF-8/);
    refused(t, connect({ flags: 0x82, user: bytes('u', bad) }), true, /user name is not valid UTF-8/);
  }
  refused(t, connect({ clientId: bytes('id', [0]) }), true, /client identifier contains U\+0000 .*\[MQTT-1\.5\.3-2\]/);
  refused(t, connect({ flags: 0x06, willTopic: bytes('w/', [0]) }), true, /will topic contains U\+0000/);
  refused(t, connect({ flags: 0x82, user: bytes('u', [0]) }), true, /user name contains U\+0000/);
  passes(t, connect({ clientId: bytes('id', [0x01]) }), true, 'a control character (§1.5.3 SHOULD NOT, MAY refuse; we accept)');
});

t.test('the will topic is a topic name: not empty, no wildcards', async (t) => {
  refused(t, connect({ flags: 0x06, willTopic: '' }), true, /will topic is empty .*§4\.7\.3/);
  refused(t, connect({ flags: 0x06, willTopic: 'w/+' }), true, /will topic contains the wildcard '\+'/);
  refused(t, connect({ flags: 0x06, willTopic: 'w/#' }), true, /will topic contains the wildcard '#'/);
});

t.test('§3.1.3 the payload is exactly the announced fields', async (t) => {
  refused(t, connect({ trailing: Buffer.from([1, 2, 3]) }), true, /3 byte\(s\) after its last payload field/);
  refused(t, connect({ flags: 0xc2, trailing: Buffer.from([0]) }), true, /1 byte\(s\) after/);
  // A field running past the end is left to the parser, which refuses it.
  const short = connect({ clientId: 'abcdef' });
  t.equal(packetViolation(packet(0x10, short.subarray(2, short.length - 3)), true), undefined, 'client id past the end: left to the parser');
  t.equal(packetViolation(packet(0x10, field('MQTT'), Buffer.from([4])), true), undefined, 'CONNECT cut after the level: left to the parser');
  t.equal(packetViolation(Buffer.from([0x10, 0x00]), true), undefined, 'empty CONNECT: left to the parser');
  const noPassword = connect({ flags: 0xc2 });
  t.equal(packetViolation(packet(0x10, noPassword.subarray(2, noPassword.length - 8)), true), undefined, 'password announced, absent: left to the parser');
});

t.test('MQTT 3.1 client identifiers are 1-23 characters: an empty one gets CONNACK 2', async (t) => {
  refused(t, connect({ name: 'MQIsdp', level: 3, clientId: '' }), true, /MQTT 3\.1 CONNECT with an empty client identifier/, 2);
  refused(t, connect({ name: 'MQIsdp', level: 3, clientId: '', flags: 0 }), true, /empty client identifier/, 2);
  passes(t, connect({ clientId: '' }), true, 'MQTT 3.1.1 with an empty id and clean session (the server assigns one)');
  passes(t, connect({ clientId: '', flags: 0 }), true, 'MQTT 3.1.1, empty id, persistent: CONNACK 2 comes from runtime/bus.ts preConnect');
});

t.test('§2.2.2 fixed-header flags and §2.2.1 packet types', async (t) => {
  refused(t, Buffer.from([0x11, ...connect().subarray(1)]), true, /CONNECT with fixed-header flags 0001, must be 0000/);
  refused(t, Buffer.from([0x80, ...subscribe(['a']).subarray(1)]), false, /SUBSCRIBE with fixed-header flags 0000, must be 0010 .*\[MQTT-2\.2\.2-2\]/);
  refused(t, Buffer.from([0x83, ...subscribe(['a']).subarray(1)]), false, /SUBSCRIBE with fixed-header flags 0011/);
  refused(t, Buffer.from([0xa0, ...unsubscribe(['a']).subarray(1)]), false, /UNSUBSCRIBE with fixed-header flags 0000/);
  refused(t, Buffer.from([0x60, 0x02, 0x00, 0x01]), false, /PUBREL with fixed-header flags 0000, must be 0010/);
  refused(t, Buffer.from([0x42, 0x02, 0x00, 0x01]), false, /PUBACK with fixed-header flags 0010, must be 0000/);
  refused(t, Buffer.from([0x52, 0x02, 0x00, 0x01]), false, /PUBREC with fixed-header flags/);
  refused(t, Buffer.from([0x78, 0x02, 0x00, 0x01]), false, /PUBCOMP with fixed-header flags 1000/);
  refused(t, Buffer.from([0xc1, 0x00]), false, /PINGREQ with fixed-header flags 0001/);
  refused(t, Buffer.from([0xe2, 0x00]), false, /DISCONNECT with fixed-header flags 0010/);
  refused(t, Buffer.from([0x00, 0x00]), false, /packet type 0 is reserved .*§2\.2\.1/);
  refused(t, Buffer.from([0xf0, 0x00]), false, /packet type 15 is reserved/);
  for (const [first, name] of [
    [0x20, 'CONNACK'],
    [0x90, 'SUBACK'],
    [0xb0, 'UNSUBACK'],
    [0xd0, 'PINGRESP'],
  ] as const) {
    refused(t, Buffer.from([first, 0x02, 0x00, 0x01]), false, new RegExp(`${name} is a server-to-client packet`));
  }
  passes(t, Buffer.from([0x3d, ...publish('a/b', 2).subarray(1)]), false, 'PUBLISH flags are DUP, QoS and RETAIN (0x3d: DUP, QoS 2, RETAIN)');
});

t.test('PUBLISH: QoS, topic name and packet identifier', async (t) => {
  refused(t, Buffer.from([0x36, ...publish('a/b', 1).subarray(1)]), false, /PUBLISH with QoS 3 .*§3\.3\.1\.2/);
  for (const bad of [NOT_UTF8, OVERLONG_SLASH, SURROGATE, TRUNCATED_EURO, LONE_FF]) {
    refused(t, publish(bytes('a/', bad), 1), false, /^PUBLISH topic is not valid UTF-8 \(MQTT 3\.1\.1 §1\.5\.3/);
  }
  refused(t, publish(bytes('a/', [0], 'b'), 1), false, /PUBLISH topic contains U\+0000 \(MQTT 3\.1\.1 §1\.5\.3, \[MQTT-1\.5\.3-2\]\)/);
  refused(t, publish(bytes([0])), false, /contains U\+0000/);
  refused(t, publish(bytes('é/', [0])), false, /contains U\+0000/);
  refused(t, publish(''), false, /PUBLISH topic is empty .*\[MQTT-4\.7\.3-1\]/);
  refused(t, publish('a/+'), false, /wildcard '\+' .*§3\.3\.2\.1/);
  refused(t, publish('a/#', 2), false, /wildcard '#'/);
  refused(t, publish('a+b'), false, /wildcard '\+'/);
  refused(t, publish('a/b', 1, 0), false, /PUBLISH QoS 1 with packet identifier 0 .*§2\.3\.1/);
  refused(t, publish('a/b', 2, 0), false, /PUBLISH QoS 2 with packet identifier 0/);
  refused(t, packet(0x32, field('a/b')), false, /PUBLISH QoS 1 without its packet identifier/);
  refused(t, packet(0x34, field('a/b'), Buffer.from([7])), false, /PUBLISH QoS 2 without its packet identifier/);
  passes(t, packet(0x30, field('a/b')), false, 'QoS 0 with an empty payload');
  passes(t, publish('a/b', 0, 0), false, 'QoS 0 has no packet identifier (the payload may start with 0x00 0x00)');
  passes(t, publish('a/\t/\u007f/\u0085/\ufffe/\uffff/\ufdd0', 1), false, 'control characters and non-characters (§1.5.3 SHOULD NOT, MAY refuse; we accept)');
  t.equal(packetViolation(packet(0x30, u16(9), Buffer.from('a/b')), false), undefined, 'topic running past the end: left to the parser');
  t.equal(packetViolation(Buffer.from([0x30, 0x01, 0x00]), false), undefined, 'no room for the topic length: left to the parser');
  t.equal(packetViolation(Buffer.from([0x30, 0x00]), false), undefined, 'empty PUBLISH: left to the parser');
});

t.test('SUBSCRIBE: packet identifier, at least one filter, wildcard placement, UTF-8, options', async (t) => {
  refused(t, subscribe(['a/b'], 0), false, /SUBSCRIBE with packet identifier 0 .*\[MQTT-2\.3\.1-1\]/);
  refused(t, packet(0x82, u16(1)), false, /SUBSCRIBE without a topic filter .*\[MQTT-3\.8\.3-3\]/);
  refused(t, Buffer.from([0x82, 0x01, 0x00]), false, /SUBSCRIBE without its packet identifier/);
  refused(t, Buffer.from([0x82, 0x00]), false, /SUBSCRIBE without its packet identifier/);
  for (const filter of ['a+/b', 'a/+b', 'a+', '+a', 'a/b+', '++', 'a/++/b'])
    refused(t, subscribe([filter]), false, new RegExp(`"${filter.replace(/\+/g, '\\+')}" has '\\+' other than as a whole level .*§4\\.7\\.1\\.3`));
  for (const filter of ['a#', 'a/b#', 'a/#/b', '#/a', '##', '#/', 'a/#/#'])
    refused(t, subscribe([filter]), false, /has '#' other than as the whole last level .*§4\.7\.1\.2/);
  refused(t, subscribe(['a/b', 'a+/b']), false, /"a\+\/b"/);
  refused(t, subscribe(['']), false, /SUBSCRIBE topic filter is empty/);
  refused(t, subscribe([bytes('a/', NOT_UTF8)]), false, /SUBSCRIBE topic filter is not valid UTF-8/);
  refused(t, subscribe([bytes('a', OVERLONG_SLASH, 'b')]), false, /not valid UTF-8/);
  refused(t, subscribe([bytes('a/', [0])]), false, /SUBSCRIBE topic filter contains U\+0000/);
  refused(t, packet(0x82, u16(1), field('a/b'), Buffer.from([3])), false, /requested QoS byte 3/);
  refused(t, packet(0x82, u16(1), field('a/b'), Buffer.from([4])), false, /requested QoS byte 4/);
  refused(t, packet(0x82, u16(1), field('a/b'), Buffer.from([0x81])), false, /requested QoS byte 129/);
  t.equal(packetViolation(packet(0x82, u16(1), field('a/b')), false), undefined, 'filter without its QoS byte: left to the parser');
  t.equal(packetViolation(packet(0x82, u16(1), u16(40), Buffer.from('a')), false), undefined, 'filter running past the end: left to the parser');
  t.equal(packetViolation(packet(0x82, u16(1), Buffer.from([0])), false), undefined, 'one stray byte: left to the parser');
});

t.test('UNSUBSCRIBE: packet identifier, at least one filter, the filter rules', async (t) => {
  refused(t, unsubscribe(['a/b'], 0), false, /UNSUBSCRIBE with packet identifier 0/);
  refused(t, packet(0xa2, u16(1)), false, /UNSUBSCRIBE without a topic filter .*\[MQTT-3\.10\.3-2\]/);
  refused(t, Buffer.from([0xa2, 0x01, 0x00]), false, /UNSUBSCRIBE without its packet identifier/);
  refused(t, unsubscribe(['a+/b']), false, /UNSUBSCRIBE topic filter "a\+\/b" has '\+'/);
  refused(t, unsubscribe(['a/#/b']), false, /has '#'/);
  refused(t, unsubscribe(['ok', '']), false, /UNSUBSCRIBE topic filter is empty/);
  refused(t, unsubscribe([bytes('a/', SURROGATE)]), false, /not valid UTF-8/);
  refused(t, unsubscribe([bytes('a/', [0])]), false, /contains U\+0000/);
  t.equal(packetViolation(packet(0xa2, u16(1), u16(40), Buffer.from('a')), false), undefined, 'filter running past the end: left to the parser');
});

t.test('PUBACK, PUBREC, PUBREL, PUBCOMP: a non-zero packet identifier (§2.3.1)', async (t) => {
  for (const [first, name] of [
    [0x40, 'PUBACK'],
    [0x50, 'PUBREC'],
    [0x62, 'PUBREL'],
    [0x70, 'PUBCOMP'],
  ] as const) {
    refused(t, Buffer.from([first, 0x02, 0x00, 0x00]), false, new RegExp(`^${name} with packet identifier 0`));
    refused(t, Buffer.from([first, 0x01, 0x00]), false, new RegExp(`^${name} without its packet identifier \\(remaining length 1`));
    refused(t, Buffer.from([first, 0x00]), false, new RegExp(`^${name} without its packet identifier \\(remaining length 0`));
    passes(t, Buffer.from([first, 0x02, 0x12, 0x34]), false, `${name} 0x1234`);
    passes(t, Buffer.from([first, 0x03, 0x00, 0x01, 0x00]), false, `${name} with a trailing byte (Mosquitto accepts it)`);
  }
});

t.test('never throws, whatever the bytes', async (t) => {
  // The framing hands over complete packets only, but the rules must not trust that.
  let seed = 0x2545f491;
  const random = (n: number): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const samples = [
    connect({ flags: 0xee, willTopic: 'w/t' }),
    publish('a/é', 2, 5),
    subscribe(['a/+', '#']),
    unsubscribe(['a/#']),
    Buffer.from([0x62, 0x02, 0x00, 0x01]),
  ];
  let calls = 0;
  for (const sample of samples) {
    for (let cut = 0; cut <= sample.length; cut++) {
      for (const first of [true, false]) {
        packetViolation(sample.subarray(0, cut), first);
        calls++;
      }
    }
  }
  for (let i = 0; i < 20_000; i++) {
    const sample = samples[random(samples.length)]!;
    const mutated = Buffer.from(sample);
    for (let k = 0, n = 1 + random(4); k < n; k++) mutated[random(mutated.length)] = random(256);
    packetViolation(mutated, random(2) === 0);
    const noise = Buffer.alloc(random(40));
    for (let k = 0; k < noise.length; k++) noise[k] = random(256);
    packetViolation(noise, random(2) === 0);
    calls += 2;
  }
  t.pass(`${calls} calls on truncated, mutated and random packets, none threw`);
});
