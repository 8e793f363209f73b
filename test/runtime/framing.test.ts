/**
 * MqttFraming (runtime/broker/framing.ts): the stream between a client's socket and Aedes.
 * Reads are cut at packet boundaries and bounded in packets, the socket is paused while
 * packets wait, every packet is inspected, and one packet's pieces leave in one write.
 */
import t from 'tap';
import { Duplex, PassThrough } from 'node:stream';
import { MqttFraming, type PacketInspector } from '../../runtime/broker/framing.js';

const PINGREQ = [0xc0, 0x00];
/** A PUBLISH QoS 0 to topic "a/b" with payload "x": 30 07 00 03 61 2f 62 78 -> 9 bytes. */
const PUBLISH = [0x30, 0x06, 0x00, 0x03, 0x61, 0x2f, 0x62, 0x78];

/** A socket stand-in: what the broker writes is recorded write by write. */
class FakeSocket extends Duplex {
  readonly writes: Buffer[] = [];
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.writes.push(Buffer.from(chunk));
    cb();
  }
  /** As net.Socket: buffered chunks leave in one writev. */
  override _writev(chunks: Array<{ chunk: Buffer }>, cb: () => void): void {
    this.writes.push(Buffer.concat(chunks.map((c) => c.chunk)));
    cb();
  }
}

function framing(inner: Duplex, options: { perRead?: number; inspect?: PacketInspector; max?: number } = {}) {
  const refusals: Array<{ reason: string; announcedBytes?: number }> = [];
  const f = new MqttFraming(inner, {
    maxPacketBytes: options.max ?? 1024,
    maxPacketsPerRead: options.perRead ?? 64,
    ...(options.inspect ? { inspect: options.inspect } : {}),
    onRefused: (r) => refusals.push(r),
  });
  f.on('error', () => undefined);
  return { f, refusals };
}

/** Reads as Aedes does: on 'readable', read(null), and read again only when told the batch is done. */
function brokerReads(f: MqttFraming): { reads: Buffer[]; next(): void } {
  const reads: Buffer[] = [];
  let busy = false;
  const read = (): void => {
    if (busy) return;
    const buf = f.read() as Buffer | null;
    if (buf) {
      reads.push(buf);
      busy = true;
    }
  };
  f.on('readable', read);
  return {
    reads,
    next() {
      busy = false;
      read();
    },
  };
}

const tick = () => new Promise((r) => setImmediate(r));

t.test('one socket chunk of 1,000 packets reaches the broker 64 packets per read, the socket paused meanwhile', async (t) => {
  const inner = new PassThrough();
  const { f } = framing(inner, { perRead: 64 });
  const broker = brokerReads(f);
  const chunk = Buffer.from(Array.from({ length: 1000 }, () => PUBLISH).flat());
  inner.write(chunk);
  await tick();
  t.equal(broker.reads.length, 1, 'one read handed over');
  t.ok(
    broker.reads[0]!.length <= 2 * 64 * PUBLISH.length && broker.reads[0]!.length % PUBLISH.length === 0,
    `whole packets, at most two reads' worth: ${broker.reads[0]!.length / PUBLISH.length} packets`,
  );
  t.equal(inner.isPaused(), true, 'the socket is not read while packets wait for the broker');
  let total = broker.reads[0]!.length;
  while (total < chunk.length) {
    broker.next();
    await tick();
    const last = broker.reads[broker.reads.length - 1]!;
    t.ok(last.length <= 2 * 64 * PUBLISH.length, 'no read is larger than the bound');
    total += last.length;
    if (broker.reads.length > 100) break;
  }
  t.same(Buffer.concat(broker.reads), chunk, 'every byte arrives, in order');
  t.equal(inner.isPaused(), false, 'once everything was taken, the socket is read again');
});

t.test('packets split anywhere, byte by byte, arrive whole', async (t) => {
  const inner = new PassThrough();
  const { f } = framing(inner);
  const broker = brokerReads(f);
  const bytes = [...PINGREQ, ...PUBLISH, ...PINGREQ];
  for (const b of bytes) {
    inner.write(Buffer.from([b]));
    await tick();
    broker.next();
  }
  await tick();
  t.same(Buffer.concat(broker.reads), Buffer.from(bytes));
  for (const r of broker.reads) t.ok([2, 8].includes(r.length), `a read of ${r.length} bytes is one whole packet`);
});

t.test('the inspector sees each complete packet once; a violation drops the connection, a CONNACK code is sent first', async (t) => {
  const seen: Array<[number, boolean]> = [];
  const inner = new FakeSocket();
  const { f, refusals } = framing(inner, {
    inspect: (packet, first) => {
      seen.push([packet[0]!, first]);
      return packet[0] === 0x10 ? { reason: 'unsupported level', connackReturnCode: 1 } : undefined;
    },
  });
  brokerReads(f);
  inner.push(Buffer.from([...PINGREQ, ...PINGREQ]));
  await tick();
  t.same(seen, [
    [0xc0, true],
    [0xc0, false],
  ]);
  const closed = new Promise((r) => f.once('close', r));
  inner.push(Buffer.from([0x10, 0x00]));
  await closed;
  t.same(refusals, [{ reason: 'unsupported level' }]);
  t.same(
    inner.writes.map((w) => w.toString('hex')),
    ['20020001'],
    'CONNACK with return code 1, then the close',
  );
  t.ok(inner.destroyed, 'the socket is closed');

  const plain = new FakeSocket();
  const second = framing(plain, { inspect: () => ({ reason: 'bad topic' }) });
  brokerReads(second.f);
  const closed2 = new Promise((r) => second.f.once('close', r));
  plain.push(Buffer.from(PUBLISH));
  await closed2;
  t.same(plain.writes, [], 'no CONNACK for a violation without a code');
  t.same(second.refusals, [{ reason: 'bad topic' }]);
});

t.test('an oversized packet is refused from its header, before its body is buffered', async (t) => {
  const inner = new PassThrough();
  const { f, refusals } = framing(inner, { max: 100 });
  brokerReads(f);
  const closed = new Promise((r) => f.once('close', r));
  inner.write(Buffer.from([0x30, 0xc8, 0x01]));
  await closed;
  t.same(refusals, [{ reason: 'packet too large', announcedBytes: 203 }]);
});

t.test('the pieces of one packet written in one tick leave in one write (one segment, one websocket frame)', async (t) => {
  const inner = new FakeSocket();
  const { f } = framing(inner);
  // mqtt-packet's writeToStream corks the stream, writes a packet in pieces, uncorks on the next tick.
  f.cork();
  f.write(Buffer.from([0x20]));
  f.write(Buffer.from([0x02]));
  f.write(Buffer.from([0x00]));
  f.write(Buffer.from([0x00]));
  process.nextTick(() => f.uncork());
  await tick();
  await tick();
  t.same(
    inner.writes.map((w) => w.toString('hex')),
    ['20020000'],
    'a CONNACK in one write, not four',
  );
});

t.test('packets written by separate callbacks of one event-loop turn leave together', async (t) => {
  const inner = new FakeSocket();
  const { f } = framing(inner);
  // Aedes delivers each message to a subscriber from its own setImmediate callback.
  for (let i = 0; i < 3; i++) setImmediate(() => f.write(Buffer.from(PINGREQ)));
  await tick();
  await tick();
  t.same(
    inner.writes.map((w) => w.toString('hex')),
    ['c000c000c000'],
    'three packets, one write',
  );
});

t.test('what is written just before the connection is destroyed still leaves (a refusing CONNACK)', async (t) => {
  const inner = new FakeSocket();
  const { f } = framing(inner);
  f.write(Buffer.from([0x20, 0x02, 0x00, 0x05]));
  f.destroy();
  await tick();
  t.same(
    inner.writes.map((w) => w.toString('hex')),
    ['20020005'],
    'CONNACK 5, then the close',
  );
});

t.test('back-pressure: once the socket is full, writes answer false until it drains, then "drain"', async (t) => {
  let release: (() => void) | undefined;
  const inner = new (class extends FakeSocket {
    override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
      this.writes.push(Buffer.from(chunk));
      release = cb; // the peer reads nothing until released
    }
  })({ writableHighWaterMark: 4 });
  const { f } = framing(inner);
  t.equal(f.write(Buffer.from([0xc0, 0x00, 0xc0, 0x00, 0xc0, 0x00])), true, 'gathered for the end of the turn');
  await tick();
  t.equal(inner.writes.length, 1, "sent; the socket's buffer is now over its mark");
  t.equal(f.write(Buffer.from(PINGREQ)), false, 'the socket is full: wait for drain');
  const drained = new Promise<boolean>((resolve) => f.once('drain', () => resolve(true)));
  release!();
  t.equal(await Promise.race([drained, new Promise<boolean>((r) => setTimeout(() => r(false), 500))]), true, '"drain" once the socket drained');
  await tick();
  t.same(Buffer.concat(inner.writes).toString('hex'), 'c000c000c000c000', 'and what waited was sent');
});
