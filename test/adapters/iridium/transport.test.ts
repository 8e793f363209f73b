import t from 'tap';
import { AtTransport, sbdChecksum, withChecksum, type ByteIo } from '../../../adapters/iridium/at-transport.js';

/** A ByteIo the test drives by hand, so chunk boundaries can fall anywhere. */
function fakeIo(): ByteIo & { push(data: Buffer | string, chunk?: number): void; written: Buffer[] } {
  let handler: ((b: Buffer) => void) | undefined;
  const written: Buffer[] = [];
  return {
    written,
    write: async (d) => void written.push(d),
    onData: (h) => {
      handler = h;
      return () => (handler = undefined);
    },
    push(data, chunk = 1) {
      const buf = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
      for (let i = 0; i < buf.length; i += chunk) handler?.(buf.subarray(i, i + chunk));
    },
  };
}

t.test('checksum: low 16 bits of the byte sum, high byte first ("hello" → 02 14)', async (t) => {
  t.equal(sbdChecksum(Buffer.from('hello')), 0x0214);
  t.same(withChecksum(Buffer.from('hello')), Buffer.from('68656c6c6f0214', 'hex'));
  t.equal(sbdChecksum(Buffer.alloc(340, 0xff)), (340 * 255) & 0xffff, 'wraps at 16 bits');
});

t.test('frames split one byte at a time, with echo, CR LF and a split SBDRING before them', async (t) => {
  for (const chunk of [1, 2, 3, 7, 64]) {
    const io = fakeIo();
    const tr = new AtTransport(io);
    let rings = 0;
    tr.on('ring', () => rings++);
    const payload = Buffer.from('\r\nOK\r\nSBDRING\r\n\x00\x01');
    const frame = tr.readFrame(1000);
    const body = Buffer.concat([Buffer.from([0, payload.length]), withChecksum(payload)]);
    io.push(Buffer.concat([Buffer.from('AT+SBDRB\r\r\nSBDRING\r\n'), body, Buffer.from('\r\nOK\r\n')]), chunk);
    const f = await frame;
    t.same(f.payload, payload, `chunk ${chunk}`);
    t.ok(f.checksumOk);
    t.equal(rings, 1);
    t.equal(await tr.nextLine(100, 'after'), 'OK', 'line mode resumes after the frame');
    tr.close();
  }
});

t.test('frame length above 270 is a protocol error; a silent modem a timeout', async (t) => {
  const io = fakeIo();
  const tr = new AtTransport(io);
  const frame = tr.readFrame(1000);
  io.push(Buffer.from([0x01, 0x20]));
  await t.rejects(frame, { code: 'IRIDIUM_PROTOCOL' });
  await t.rejects(tr.readFrame(30), { code: 'IRIDIUM_TIMEOUT' });
  await t.rejects(tr.nextLine(30, 'AT'), { code: 'IRIDIUM_TIMEOUT' });
});

t.test('lines: SBDRING glued to text is removed, noise dropped, buffers bounded', async (t) => {
  const io = fakeIo();
  const tr = new AtTransport(io, { maxQueuedLines: 4, maxLineLength: 32 });
  let rings = 0;
  tr.on('ring', () => rings++);
  io.push('\r\n+CSQ:\x00\xff3SBDRING\r\n', 5);
  t.equal(await tr.nextLine(100, 'x'), '+CSQ:3');
  t.equal(rings, 1);
  t.ok(tr.garbageBytes >= 2);
  io.push('x'.repeat(10_000) + '\r\n', 512);
  io.push('OK\r\n');
  t.equal(await tr.nextLine(100, 'x'), 'OK', 'an endless line is dropped, not buffered');
  for (let i = 0; i < 10; i++) io.push(`L${i}\r\n`);
  t.equal(await tr.nextLine(100, 'x'), 'L6', 'only the newest 4 lines are kept');
  t.ok(tr.droppedLines >= 7);
});
