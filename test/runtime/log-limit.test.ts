import t from 'tap';
import { Writable } from 'node:stream';
import { createLogger } from '../../runtime/log.js';

/** A gateway logger with repeats limited to one per kind per minute, on a clock the test moves. */
function limited(): { log: ReturnType<typeof createLogger>; lines: Array<Record<string, unknown>>; advance(ms: number): void } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  let now = 1_000_000;
  const realNow = Date.now;
  Date.now = () => now;
  t.teardown(() => {
    Date.now = realNow;
  });
  return { log: createLogger({ level: 'info', pretty: false, destination: sink, repeatWindowMs: 60_000 }), lines, advance: (ms) => (now += ms) };
}

t.test('a warning repeated at every attempt is logged once a minute, with the count of those left out', async (t) => {
  const { log, lines, advance } = limited();
  const adapter = log.child({ component: 'adapter', adapter: 'site' });
  for (let i = 0; i < 600; i++) {
    adapter.warn({ err: 'storage is read-only' }, 'simulated reading not stored');
    advance(100);
  }
  adapter.warn({ err: 'storage is read-only' }, 'simulated reading not stored');
  const warned = lines.filter((l) => l.msg === 'simulated reading not stored');
  t.equal(warned.length, 2, 'two lines for 601 warnings over 60 s');
  t.notOk('suppressed' in warned[0]!, 'the first one at once');
  t.equal(warned[1]!.suppressed, 599, 'the next one counts those left out');
  t.equal(warned[1]!.adapter, 'site');
});

t.test('kinds: other messages, components, adapters, client addresses and error codes are not held back by each other; info is never limited', async (t) => {
  const { log, lines } = limited();
  log.child({ component: 'adapter', adapter: 'a' }).warn('reading not stored');
  log.child({ component: 'adapter', adapter: 'b' }).warn('reading not stored');
  log.child({ component: 'sync' }).warn('reading not stored');
  log.child({ component: 'broker' }).warn({ address: '10.0.0.1' }, 'MQTT login failed');
  log.child({ component: 'broker' }).warn({ address: '10.0.0.2' }, 'MQTT login failed');
  log.child({ component: 'broker' }).warn({ address: '10.0.0.2' }, 'MQTT login failed');
  log.child({ component: 'sync', link: 'central' }).warn({ code: 'SYNC_COMMAND_FORGED' }, 'downlink command refused');
  log.child({ component: 'sync', link: 'central' }).warn({ code: 'SYNC_COMMAND_STALE' }, 'downlink command refused');
  log.child({ component: 'sync', link: 'central' }).warn({ code: 'SYNC_COMMAND_STALE' }, 'downlink command refused');
  log.error(new Error('boom'), 'failed');
  log.error(new Error('boom'), 'failed');
  for (let i = 0; i < 3; i++) log.info('adapter started');
  t.equal(lines.filter((l) => l.msg === 'reading not stored').length, 3);
  t.equal(lines.filter((l) => l.msg === 'MQTT login failed').length, 2, 'one per address');
  t.equal(lines.filter((l) => l.msg === 'downlink command refused').length, 2, 'one per error code');
  t.equal(lines.filter((l) => l.msg === 'failed').length, 1, 'errors too');
  t.equal(lines.filter((l) => l.msg === 'adapter started').length, 3, 'info lines all go out');
});

t.test('without repeatWindowMs (tests, tools) nothing is held back', async (t) => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      cb();
    },
  });
  const log = createLogger({ level: 'info', pretty: false, destination: sink });
  for (let i = 0; i < 5; i++) log.warn('again');
  t.equal(lines.length, 5);
});
