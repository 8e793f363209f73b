/**
 * Iridium compact codec: readings per 340-byte message and per 50-byte credit for a
 * realistic site (10 datapoints every minute), against a JSON encoding of the same
 * readings measured in the same run.
 *
 * Then stand-alone forwarding of the first day, sent every hour (bench/iridium-forwarding.ts):
 * readings per credit with the link up every hour ("steady") and after a 6-hour outage
 * ("outage recovery"), with the policy before issue 22 beside the forwarding queue's.
 *
 *   node --import tsx bench/iridium.bench.ts            (one day of data, ~2 s)
 *   IRIDIUM_BENCH_DAYS=30 node --import tsx bench/iridium.bench.ts
 */
import { CREDIT_BYTES, MAX_MO_BYTES, MoCodec, creditsFor, type CodecTable, type Reading } from '../adapters/iridium/codec.js';
import { mulberry32 } from '../test/helpers/rng.js';
import { forwardBefore, forwardNow, type ForwardingFigures } from './iridium-forwarding.js';

const days = Number(process.env.IRIDIUM_BENCH_DAYS ?? 1);

const seeded = mulberry32;

const table: CodecTable = {
  timeResolutionMs: 1000,
  datapoints: [
    { id: 'site.grid.power', decimals: 0, type: 'number' },
    { id: 'site.load.power', decimals: 0, type: 'number' },
    { id: 'site.pv.power', decimals: 0, type: 'number' },
    { id: 'site.grid.energy_import', decimals: 2, type: 'number' },
    { id: 'site.outdoor.temperature', decimals: 1, type: 'number' },
    { id: 'site.outdoor.humidity', decimals: 0, type: 'number' },
    { id: 'site.wind.speed', decimals: 1, type: 'number' },
    { id: 'site.battery.voltage', decimals: 2, type: 'number' },
    { id: 'site.tank.level', decimals: 2, type: 'number' },
    { id: 'site.pump.running', decimals: 0, type: 'boolean' },
  ],
};

/** A buoy/cabin-like day: slow weather, PV bell curve, noisy load, a pump cycling. */
function realisticSite(rand: () => number, minutes: number): Reading[] {
  const out: Reading[] = [];
  const start = Date.UTC(2025, 5, 1);
  let energy = 12_345.67,
    temp = 14,
    hum = 70,
    wind = 6,
    volt = 12.8,
    level = 2.4,
    pump = false;
  for (let m = 0; m < minutes; m++) {
    // A real gateway stamps readings with a few hundred ms of scheduling jitter.
    const t = start + m * 60_000 + Math.floor((rand() - 0.5) * 400);
    const hour = (m / 60) % 24;
    const pv = Math.max(0, Math.sin(((hour - 6) / 12) * Math.PI)) * 3000 * (0.7 + rand() * 0.3);
    const load = 800 + rand() * 400 + (pump ? 1500 : 0);
    const grid = load - pv;
    energy += Math.max(0, grid) / 60_000;
    temp += (rand() - 0.5) * 0.2;
    hum = Math.min(100, Math.max(20, hum + (rand() - 0.5) * 1.2));
    wind = Math.max(0, wind + (rand() - 0.5) * 0.6);
    volt += (pv > 500 ? 0.002 : -0.001) + (rand() - 0.5) * 0.01;
    level += pump ? -0.01 : 0.003;
    if (level < 1.5) pump = false;
    if (level > 2.8) pump = true;
    const v = [Math.round(grid), Math.round(load), Math.round(pv), energy, temp, hum, wind, volt, level, pump];
    table.datapoints.forEach((dp, i) => {
      out.push({ id: dp.id, t, v: v[i]! as number | boolean });
    });
  }
  return out;
}

const rand = seeded(2025);
const readings = realisticSite(rand, days * 24 * 60);
const codec = new MoCodec(table);

// ---- compact: fill messages greedily up to 340 bytes ----
const t0 = performance.now();
const messages: Buffer[] = [];
let offset = 0;
let seq = 0;
while (offset < readings.length) {
  const { bytes, count } = codec.packPrefix(readings.slice(offset, offset + MAX_MO_BYTES * 8), seq++);
  messages.push(bytes);
  offset += count;
}
const encodeMs = performance.now() - t0;
const t1 = performance.now();
let decodedCount = 0;
for (const m of messages) decodedCount += codec.decode(m).readings.length;
const decodeMs = performance.now() - t1;
if (decodedCount !== readings.length) throw new Error(`decoded ${decodedCount} of ${readings.length}`);

const compactBytes = messages.reduce((n, m) => n + m.length, 0);
const compactCredits = messages.reduce((n, m) => n + creditsFor(m.length), 0);
const full = messages.slice(0, -1);
const fullBytes = full.reduce((n, m) => n + m.length, 0);
const fullCredits = full.reduce((n, m) => n + creditsFor(m.length), 0);

// ---- peer: JSON of the same readings, chunked into 340-byte messages ----
const t2 = performance.now();
const json = readings.map((r) => JSON.stringify({ id: r.id, v: r.v, t: r.t }));
const jsonEncodeMs = performance.now() - t2;
const jsonBytes = json.reduce((n, s) => n + Buffer.byteLength(s) + 1, 1); // as one JSON array: commas and brackets
const jsonMessages: number[] = [];
let current = 2;
for (const s of json) {
  const len = Buffer.byteLength(s) + 1;
  if (current + len > MAX_MO_BYTES) {
    jsonMessages.push(current);
    current = 2;
  }
  current += len;
}
jsonMessages.push(current);
const jsonCredits = jsonMessages.reduce((n, b) => n + creditsFor(b), 0);
const t3 = performance.now();
JSON.parse(`[${json.join(',')}]`);
const jsonDecodeMs = performance.now() - t3;

const perMessage = readings.length / messages.length;
const perCredit = readings.length / compactCredits;
const jsonPerCredit = readings.length / jsonCredits;
const paidUse = compactBytes / (compactCredits * CREDIT_BYTES);
const fullPaidUse = full.length ? fullBytes / (fullCredits * CREDIT_BYTES) : paidUse;

const row = (k: string, v: string) => console.log(`${k.padEnd(48)} ${v}`);
console.log(`Iridium compact codec — realistic site: 10 datapoints every minute, ${days} day(s), ${readings.length} readings\n`);
row('compact messages (≤ 340 B)', `${messages.length}, ${compactBytes} B, ${compactCredits} credits`);
row('readings per 340-byte message', perMessage.toFixed(1));
row('readings per 50-byte credit', `${perCredit.toFixed(1)}   (target ≥ 20)`);
row('bytes per reading (compact)', (compactBytes / readings.length).toFixed(2));
row('bytes per reading (JSON)', (jsonBytes / readings.length).toFixed(2));
row('size ratio JSON / compact', `${(jsonBytes / compactBytes).toFixed(1)}×   (target ≥ 10×)`);
row('readings per credit ratio compact / JSON', `${(perCredit / jsonPerCredit).toFixed(1)}×  (JSON: ${jsonPerCredit.toFixed(2)} per credit)`);
row('paid bytes used (all messages)', `${(paidUse * 100).toFixed(1)} %   (target ≥ 95 %)`);
row('paid bytes used (full messages)', `${(fullPaidUse * 100).toFixed(1)} %`);
row('encode time compact / JSON.stringify', `${(encodeMs / jsonEncodeMs).toFixed(1)}×  (${encodeMs.toFixed(1)} ms vs ${jsonEncodeMs.toFixed(1)} ms)`);
row('decode time compact / JSON.parse', `${(decodeMs / jsonDecodeMs).toFixed(1)}×  (${decodeMs.toFixed(1)} ms vs ${jsonDecodeMs.toFixed(1)} ms)`);

// ---- stand-alone forwarding, hourly sends: steady vs after an outage (hours 8-13 down) ----
const day = readings.slice(0, 24 * 60 * table.datapoints.length);
const steady = (): boolean => false;
const outage = (hour: number): boolean => hour >= 8 && hour < 14;
// The same site read every 15 minutes (a buoy on a tight budget): a message per interval is
// mostly the rounding up to whole credits, which is what packing together saves.
const sparse = day.filter((r) => Math.floor((r.t - Date.UTC(2025, 5, 1) + 30_000) / 60_000) % 15 === 0);
const scenario = async (list: readonly Reading[]) => {
  const f = {
    steadyBefore: forwardBefore(codec, list, steady),
    steadyNow: await forwardNow(codec, list, steady),
    outageBefore: forwardBefore(codec, list, outage),
    outageNow: await forwardNow(codec, list, outage),
  };
  for (const x of Object.values(f)) if (x.readings !== list.length) throw new Error(`forwarding delivered ${x.readings} of ${list.length} readings`);
  return f;
};
const per = (f: ForwardingFigures): number => f.readings / f.credits;
const fig = (f: ForwardingFigures): string => `${per(f).toFixed(1)}/credit (${f.messages} msgs, ${f.credits} cr)`;
const fwd = await scenario(day);
const fwdSparse = await scenario(sparse);
console.log(`\nStand-alone forwarding, sent hourly, first day: readings per credit, before issue 22 → now\n`);
row(`every minute (${day.length}), steady`, `${fig(fwd.steadyBefore)} → ${fig(fwd.steadyNow)}`);
row(`every minute, outage recovery (6 h down)`, `${fig(fwd.outageBefore)} → ${fig(fwd.outageNow)}`);
row(`every 15 min (${sparse.length}), steady`, `${fig(fwdSparse.steadyBefore)} → ${fig(fwdSparse.steadyNow)}`);
row(`every 15 min, outage recovery (6 h down)`, `${fig(fwdSparse.outageBefore)} → ${fig(fwdSparse.outageNow)}`);

const ok =
  perCredit >= 20 &&
  jsonBytes / compactBytes >= 10 &&
  paidUse >= 0.95 &&
  per(fwd.outageNow) >= per(fwd.steadyNow) &&
  per(fwdSparse.outageNow) >= per(fwdSparse.steadyNow);
console.log(`\n${ok ? 'PASS' : 'FAIL'}: ≥ 20 readings/credit, ≥ 10× JSON, ≥ 95 % of paid bytes used, an outage costs no more per reading than steady sending`);
if (!ok) process.exitCode = 1;
