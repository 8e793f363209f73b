import t from 'tap';
import { classifyMoStatus } from '../../../adapters/iridium/session.js';
import { mockRig, ptyRig, type Rig } from './harness.js';
import type { ModemOptions } from '../../../adapters/iridium/modem.js';
import type { SimulatorOptions } from '../../../adapters/iridium/simulator.js';
import type { Teardown } from '../../helpers/teardown.js';

type MakeRig = (t: Teardown, sim?: SimulatorOptions, modem?: ModemOptions) => Promise<Rig>;

/** The whole driver suite, run over a real socat pty and over the serialport mock binding. */
function driverSuite(name: string, make: MakeRig): void {
  t.test(`${name}: start-up retries AT while the modem is silent, then configures it`, async (t) => {
    const { modem, sim } = await make(t, { bootSilenceMs: 400, echo: true });
    const info = await modem.init();
    t.equal(info.imei, '300434060000000');
    t.match(info.firmware.join('\n'), /TA21004/);
    t.match(info.model, /9600 Family/);
    t.equal(sim.echo, false, 'ATE0 sent');
    t.equal(sim.ringAlerts, true, 'AT+SBDMTA=1 sent');
    t.ok(sim.commands.includes('AT&K0'), 'flow control off');
  });

  t.test(`${name}: works with echo left on`, async (t) => {
    const { modem, sim } = await make(t, { echo: true }, { echoOff: false });
    await modem.init();
    t.equal(sim.echo, true);
    t.equal(await modem.signalQuality(), 4);
    await modem.writeMo(Buffer.from('AT+CSQ\r\nOK\r\n'));
    t.same(sim.moBuffer, Buffer.from('AT+CSQ\r\nOK\r\n'));
    const r = await modem.session();
    t.equal(r.moStatus, 0);
  });

  t.test(`${name}: start-up gives up with IRIDIUM_TIMEOUT when nothing answers`, async (t) => {
    const { modem, sim } = await make(t, {}, { timeouts: { startupMs: 500 } });
    sim.mute = true;
    await t.rejects(modem.init(), { code: 'IRIDIUM_TIMEOUT' });
  });

  t.test(`${name}: +CSQ 0..5, ERROR and timeouts`, async (t) => {
    const { modem, sim } = await make(t);
    await modem.init();
    for (const bars of [0, 1, 2, 3, 4, 5]) {
      sim.signal = bars;
      t.equal(await modem.signalQuality(), bars);
    }
    sim.noNetwork = true;
    t.equal(await modem.signalQuality(), 0, 'no network');
    sim.errorCommands.add('AT+CSQ');
    await t.rejects(modem.signalQuality(), { code: 'IRIDIUM_PROTOCOL' });
    sim.errorCommands.clear();
    sim.mute = true;
    await t.rejects(modem.signalQuality(), { code: 'IRIDIUM_TIMEOUT' });
    sim.mute = false;
    sim.noNetwork = false;
    t.equal(await modem.signalQuality(), sim.signal, 'recovers after a timeout');
  });

  t.test(`${name}: +SBDWB result codes 0, 1, 2, 3 and local size checks`, async (t) => {
    const { modem, sim, transport } = await make(t);
    await modem.init();
    const tricky = Buffer.from('\r\nOK\r\nSBDRING\r\nERROR\r\nREADY\r\n\x00\x01\xff');
    await modem.writeMo(tricky);
    t.same(sim.moBuffer, tricky, 'status 0: bytes stored exactly');
    sim.badWriteChecksums = 1;
    await t.rejects(modem.writeMo(Buffer.from('x')), { code: 'IRIDIUM_CHECKSUM' }, 'status 2');
    sim.maxMoBytes = 10;
    await t.rejects(modem.writeMo(Buffer.alloc(11, 1)), { code: 'IRIDIUM_MO_SIZE' }, 'status 3 from the modem');
    sim.maxMoBytes = 340;
    sim.sbdwbTimeoutMs = 150;
    sim.dropWriteBytes = 2;
    await t.rejects(modem.writeMo(Buffer.alloc(20, 0x41)), { code: 'IRIDIUM_TIMEOUT', message: /status 1/ }, 'status 1 (no OK follows)');
    await modem.writeMo(Buffer.alloc(340, 0xab));
    t.equal(sim.moBuffer?.length, 340, 'a full 340-byte message after the timeout');
    const before = sim.commands.length;
    await t.rejects(modem.writeMo(Buffer.alloc(0)), { code: 'IRIDIUM_MO_SIZE' });
    await t.rejects(modem.writeMo(Buffer.alloc(341)), { code: 'IRIDIUM_MO_SIZE' });
    t.equal(sim.commands.length, before, 'bad sizes never reach the modem');
    t.equal(transport.droppedLines, 0);
  });

  t.test(`${name}: +SBDIX parsing for every MO status class, +SBDIXA for ring alerts`, async (t) => {
    const { modem, sim } = await make(t);
    await modem.init();
    const codes = [0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 32, 33, 34, 35, 36, 37, 38, 64];
    sim.scriptedMoStatus.push(...codes);
    const seen: Array<[number, string]> = [];
    for (const code of codes) {
      const r = await modem.session(code === 4);
      t.equal(r.moStatus, code);
      seen.push([code, classifyMoStatus(code).kind]);
    }
    t.same(Object.fromEntries(seen), {
      0: 'success',
      1: 'success',
      2: 'success',
      3: 'success',
      4: 'success',
      5: 'retry',
      10: 'retry',
      11: 'retry',
      12: 'fatal',
      13: 'retry',
      14: 'fatal',
      15: 'account',
      16: 'account',
      17: 'retry',
      18: 'retry',
      19: 'retry',
      32: 'retry',
      33: 'hardware',
      34: 'hardware',
      35: 'retry',
      36: 'wait',
      37: 'retry',
      38: 'wait',
      64: 'retry',
    });
    t.equal(sim.sessions.find((s) => s.moStatus === 4)?.command, 'AT+SBDIXA');
    sim.queueMt(Buffer.from('abc'));
    sim.queueMt(Buffer.from('defg'));
    const r = await modem.session();
    t.same(r, { moStatus: 0, momsn: 5, mtStatus: 1, mtmsn: 1, mtLength: 3, mtQueued: 1 });
  });

  t.test(`${name}: +SBDRB is length-driven: CR LF, OK and SBDRING inside the payload`, async (t) => {
    const { modem, sim } = await make(t);
    await modem.init();
    const payloads = [
      Buffer.from('\r\nOK\r\n'),
      Buffer.from('SBDRING\r\nSBDRING'),
      Buffer.from([0, 1, 0x0d, 0x0a, 0x4f, 0x4b, 0x0d, 0x0a]),
      Buffer.from(Array.from({ length: 270 }, (_, i) => i % 256)),
    ];
    for (const p of payloads) {
      sim.mtBuffer = p;
      t.same(await modem.readMt(), p, `payload of ${p.length} bytes`);
    }
    sim.mtBuffer = null;
    t.same(await modem.readMt(), Buffer.alloc(0), 'empty MT buffer reads as length 0');
    sim.mtBuffer = Buffer.from('hello');
    sim.badReadChecksums = 1;
    await t.rejects(modem.readMt(), { code: 'IRIDIUM_CHECKSUM' });
    t.same(await modem.readMt(), Buffer.from('hello'), 'read again intact');
    let rings = 0;
    modem.on('ring', () => rings++);
    sim.ringsMidResponse = 1;
    t.same(await modem.readMt(), Buffer.from('hello'), 'SBDRING before the frame is skipped');
    t.equal(rings, 1, 'and reported');
    t.equal(await modem.signalQuality(), 4, 'line mode works after the frame');
  });

  t.test(`${name}: SBDRING in the middle of responses and garbage bytes are filtered`, async (t) => {
    const { modem, sim, transport } = await make(t);
    await modem.init();
    let rings = 0;
    modem.on('ring', () => rings++);
    sim.ringsMidResponse = 3;
    t.equal(await modem.signalQuality(), 4);
    await modem.clearBuffers(2);
    sim.queueMt(Buffer.from('x')); // ring alert while idle
    const r = await modem.session(true);
    t.equal(r.mtStatus, 1);
    t.ok(rings >= 3, `ring alerts seen: ${rings}`);
    sim.garbageResponses = 4;
    t.equal(await modem.signalQuality(), 4);
    await modem.writeMo(Buffer.from('data'));
    t.equal((await modem.session()).moStatus, 0);
    t.ok(transport.garbageBytes > 0, `noise bytes dropped: ${transport.garbageBytes}`);
  });

  t.test(`${name}: +SBDD0/1/2 clear the buffers`, async (t) => {
    const { modem, sim } = await make(t);
    await modem.init();
    sim.moBuffer = Buffer.from('mo');
    sim.mtBuffer = Buffer.from('mt');
    await modem.clearBuffers(0);
    t.equal(sim.moBuffer, null);
    t.same(sim.mtBuffer, Buffer.from('mt'));
    await modem.clearBuffers(1);
    t.equal(sim.mtBuffer, null);
    sim.moBuffer = Buffer.from('mo');
    sim.mtBuffer = Buffer.from('mt');
    await modem.clearBuffers(2);
    t.same([sim.moBuffer, sim.mtBuffer], [null, null]);
  });

  t.test(`${name}: +SBDIX times out with IRIDIUM_TIMEOUT when the session hangs`, async (t) => {
    const { modem, sim } = await make(t, {}, { timeouts: { sessionMs: 200 } });
    await modem.init();
    sim.sessionDelayMs = 600;
    await t.rejects(modem.session(), { code: 'IRIDIUM_TIMEOUT' });
  });
}

driverSuite('pty', ptyRig);
driverSuite('mock', mockRig);
