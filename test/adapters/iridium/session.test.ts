import t from 'tap';
import { linkRig, waitFor } from './link-rig.js';
import { eventually } from '../../helpers/gateway.js';

t.test('a successful session sends, bills, and clears the MO buffer', async (t) => {
  const { link, sim, budget } = await linkRig(t);
  link.start();
  const result = await link.send(Buffer.alloc(120, 7), 'latest');
  t.same(result, { momsn: 0, credits: 3 });
  t.same(
    sim.received.map((m) => m.bytes.length),
    [120],
  );
  t.equal(budget.today, 3);
  // The message is settled once sent and paid; the buffer clear follows right after.
  await eventually(() => sim.moBuffer === null);
  t.ok(sim.commands.includes('AT+SBDD0'), 'MO buffer cleared after success');
});

t.test('a failed AT+SBDD0 after a successful session neither resends nor re-bills the message', async (t) => {
  const { link, sim, budget } = await linkRig(t);
  sim.errorCommands.add('AT+SBDD0');
  link.start();
  const result = await link.send(Buffer.alloc(40, 1), 'latest');
  t.same(result, { momsn: 0, credits: 1 });
  sim.errorCommands.clear();
  // Another message afterwards: the first one must not go out again with it.
  await link.send(Buffer.alloc(30, 2), 'latest');
  t.same(
    sim.received.map((m) => m.bytes[0]),
    [1, 2],
    'each message received once',
  );
  t.equal(budget.today, 2, 'each billed once');
});

t.test('going idle after each message leaves no abort listeners behind', async (t) => {
  const { link } = await linkRig(t);
  const warnings: string[] = [];
  const onWarning = (w: Error): void => void warnings.push(w.name);
  process.on('warning', onWarning);
  t.teardown(() => process.off('warning', onWarning));
  link.start();
  for (let i = 0; i < 15; i++) await link.send(Buffer.alloc(10, i), 'latest');
  await new Promise((r) => setTimeout(r, 20));
  t.notOk(warnings.includes('MaxListenersExceededWarning'), 'no MaxListenersExceededWarning after 15 idle waits');
});

t.test('retryable failures back off with randomised, growing delays', async (t) => {
  const { link, sim, clock, states } = await linkRig(t);
  sim.scriptedMoStatus.push(32, 10, 18, 0);
  link.start();
  await link.send(Buffer.from('x'));
  t.equal(sim.sessions.length, 4);
  const backoffs = clock.sleeps;
  t.equal(backoffs.length, 3);
  t.ok(backoffs[0]! >= 10_000 && backoffs[0]! <= 30_000, `first ~20 s: ${backoffs[0]}`);
  t.ok(backoffs[1]! >= 20_000 && backoffs[1]! <= 60_000, `second ~40 s: ${backoffs[1]}`);
  t.ok(backoffs[2]! >= 40_000 && backoffs[2]! <= 120_000, `third ~80 s: ${backoffs[2]}`);
  t.not(backoffs[0]! * 2, backoffs[1], 'randomised, not an exact doubling');
  t.ok(states.includes('backoff'));
});

t.test('status 36 and 38 wait three minutes', async (t) => {
  const { link, sim, clock, states } = await linkRig(t);
  sim.scriptedMoStatus.push(36, 38, 0);
  link.start();
  await link.send(Buffer.from('x'));
  t.same(clock.sleeps, [180_000, 180_000]);
  t.ok(states.includes('waiting'));
});

t.test('status 15 (access denied) is an account problem: alert, long wait, message kept', async (t) => {
  const { link, sim, clock, states } = await linkRig(t);
  sim.scriptedMoStatus.push(15, 0);
  const alerts: Array<{ code: string }> = [];
  link.on('alert', (e: { code: string }) => alerts.push(e));
  link.start();
  await link.send(Buffer.from('x'));
  t.same(clock.sleeps, [3_600_000]);
  t.ok(states.includes('account_error'));
  t.same(
    alerts.map((a) => a.code),
    ['IRIDIUM_ACCOUNT'],
  );
  t.equal(sim.received.length, 1, 'sent once the account works again');
});

t.test('status 12 (too many segments) drops the message and clears the MO buffer', async (t) => {
  const { link, sim } = await linkRig(t);
  sim.scriptedMoStatus.push(12);
  link.start();
  await t.rejects(link.send(Buffer.from('bad')), { code: 'IRIDIUM_SESSION_FAILED' });
  t.equal(sim.moBuffer, null);
  t.equal(link.queued, 0);
});

t.test('MT messages are read, and drained while the gateway has more queued', async (t) => {
  const { link, sim, budget } = await linkRig(t);
  for (const m of ['one', 'two\r\nOK\r\n', 'three']) sim.queueMt(Buffer.from(m));
  const got: string[] = [];
  link.onMt((bytes) => void got.push(bytes.toString()));
  link.start();
  await link.send(Buffer.from('hello'));
  await waitFor(() => got.length === 3);
  t.same(got, ['one', 'two\r\nOK\r\n', 'three']);
  t.equal(sim.received.length, 1, 'drain sessions send no MO data');
  t.equal(sim.sessions.length, 3);
  t.equal(budget.today, 1 + 1 + 1 + 1 + 1 + 1, 'MO + 3 MT + 2 mailbox checks');
  t.equal(sim.mtBuffer, null, 'MT buffer cleared after reading');
});

t.test('a ring alert is answered with +SBDIXA', async (t) => {
  const { link, sim } = await linkRig(t);
  const got: string[] = [];
  link.onMt((bytes) => void got.push(bytes.toString()));
  link.start();
  await waitFor(() => link.state === 'idle');
  sim.queueMt(Buffer.from('setpoint please'));
  await waitFor(() => got.length === 1);
  t.same(got, ['setpoint please']);
  t.equal(sim.sessions[0]?.command, 'AT+SBDIXA');
});

t.test('a bad MT checksum is read again', async (t) => {
  const { link, sim } = await linkRig(t);
  sim.queueMt(Buffer.from('abc'));
  sim.badReadChecksums = 2;
  const got: string[] = [];
  link.onMt((bytes) => void got.push(bytes.toString()));
  link.start();
  link.mailboxCheck();
  await waitFor(() => got.length === 1);
  t.same(got, ['abc']);
});

t.test('priorities: alarms, then latest values, then history', async (t) => {
  const { link, sim } = await linkRig(t);
  const sent = [link.send(Buffer.from('history'), 'history'), link.send(Buffer.from('latest'), 'latest'), link.send(Buffer.from('alarm'), 'alarm')];
  link.start();
  await Promise.all(sent);
  t.same(
    sim.received.map((m) => m.bytes.toString()),
    ['alarm', 'latest', 'history'],
  );
});

t.test('the budget holds back history but lets alarms through', async (t) => {
  const { link, sim, budget, states } = await linkRig(t, {}, { dailyCredits: 4, alarmReserve: 2, historyShare: 0.5 });
  const history = link.send(Buffer.alloc(60, 1), 'history'); // 2 credits > (4-2)*0.5
  history.catch(() => undefined);
  link.start();
  await waitFor(() => states.includes('budget'));
  t.equal(sim.received.length, 0);
  await link.send(Buffer.alloc(60, 2), 'alarm');
  t.equal(budget.today, 2);
  t.equal(sim.received.length, 1);
  t.equal(link.queued, 1, 'history still queued for tomorrow');
});

t.test('queues are bounded: the oldest message is dropped', async (t) => {
  const { link } = await linkRig(t, { queueLimit: 2 });
  const first = link.send(Buffer.from('1'), 'history');
  const second = link.send(Buffer.from('2'), 'history');
  const third = link.send(Buffer.from('3'), 'history');
  await t.rejects(first, { code: 'IRIDIUM_QUEUE_FULL' });
  t.equal(link.dropped, 1);
  link.start();
  await Promise.all([second, third]);
  await t.rejects(link.send(Buffer.alloc(341)), { code: 'IRIDIUM_MO_SIZE' });
});

t.test('no session below the minimum signal', async (t) => {
  const { link, sim, clock, states } = await linkRig(t);
  sim.signal = 1;
  link.start();
  const sent = link.send(Buffer.from('x'));
  await waitFor(() => states.includes('no_signal'));
  t.equal(sim.sessions.length, 0);
  sim.signal = 3;
  await sent;
  t.ok(clock.sleeps.includes(30_000));
  t.equal(link.signal, 3);
});

t.test('a hung session times out, the modem is re-initialised, the message goes later', async (t) => {
  const { link, sim, modem } = await linkRig(t);
  sim.sessionDelayMs = 3_000; // longer than the 1.5 s test session timeout
  link.start();
  const sent = link.send(Buffer.from('x'));
  await waitFor(() => link.state === 'backoff', 4000);
  sim.sessionDelayMs = 0;
  await sent;
  t.ok(sim.commands.filter((c) => c === 'AT+CGSN').length >= 2, 're-initialised');
  t.ok(modem.info.imei);
});
