import t from 'tap';
import { PortRegistry } from '../../runtime/ports.js';

t.test('shared ports: opened once, reference-counted, conflicts refused', async (t) => {
  const reg = new PortRegistry();
  let opens = 0;
  let closes = 0;
  const open = async () => ({ n: ++opens });
  const close = async () => void closes++;
  const a = await reg.acquire('/dev/ttyUSB0', { baudRate: 9600, parity: 'none' }, open, close);
  const b = await reg.acquire('/dev/ttyUSB0', { parity: 'none', baudRate: 9600 }, open, close);
  t.equal(opens, 1, 'same settings share one open port');
  t.equal(a.resource, b.resource);
  await t.rejects(reg.acquire('/dev/ttyUSB0', { baudRate: 19200, parity: 'none' }, open, close), { code: 'PORT_CONFLICT', message: /ttyUSB0/ });
  await a.release();
  await a.release();
  t.equal(closes, 0, 'still held by the second user; double release is harmless');
  await b.release();
  t.equal(closes, 1);
  t.equal(reg.size, 0);
  const failing = reg.acquire(
    '/dev/gone',
    {},
    async () => {
      throw new Error('ENOENT');
    },
    close,
  );
  await t.rejects(failing, /ENOENT/);
  t.equal(reg.size, 0, 'a failed open leaves nothing behind, so it can be retried');
});
