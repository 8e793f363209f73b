import { OutpostError } from '../../core/errors.js';
import { encodeMt, MAX_MT_SCHEDULE_ENTRIES, MAX_MT_SCHEDULE_SPAN_S, MT_EPOCH_MS, type MtCommand, type MtFormat } from '../../adapters/iridium/mt.js';
import { requestRef } from '../../runtime/sync/command-memory.js';
import type { QueuedCommand } from '../store/contract.js';
import './errors.js';

export interface RockblockMtOptions {
  /** `https://rockblock.rock7.com/rockblock/MT` (configurable: tests use a local fake). */
  url: string;
  username: string;
  password: string;
  timeoutMs: number;
  fetch?: typeof fetch;
}

/**
 * The MT op a command becomes, or why it cannot go over the satellite: the MT format
 * (adapters/iridium/mt.ts) carries setpoints and schedules of the Iridium table's datapoints
 * (numbers and booleans, scaled by `decimals`; schedule times in whole seconds) and named
 * commands — no strings, no `alarm.ack`. Each op names its requestId by `requestRef` (op 0x05),
 * so the gateway answers a copy it applied over another link from its memory.
 */
export function mtCommandOf(c: QueuedCommand, format: Pick<MtFormat, 'datapoints'>): MtCommand | string {
  const { type, id } = c.command;
  if (type !== 'setpoint' && type !== 'schedule') return `a ${type} command does not fit the MT format (setpoints and schedules only)`;
  const dp = typeof id === 'string' ? format.datapoints.find((d) => d.id === id) : undefined;
  if (!dp) return `datapoint ${String(id)} is not in the gateway's Iridium table`;
  const ref = requestRef(c.command.requestId);
  const fits = (v: unknown): v is number | boolean => (dp.type === 'boolean' ? typeof v === 'boolean' : typeof v === 'number' && Number.isFinite(v));
  if (type === 'setpoint') {
    const v = c.command.v;
    if (!fits(v)) return "only number and boolean setpoints of the datapoint's type go over the satellite";
    return { kind: 'setpoint', id: dp.id, v, ref };
  }
  const list = c.command.entries;
  if (!Array.isArray(list)) return 'a schedule needs "entries"';
  if (list.length > MAX_MT_SCHEDULE_ENTRIES) return `a schedule of more than ${MAX_MT_SCHEDULE_ENTRIES} entries does not fit an MT message`;
  const entries: Array<{ at: number; v: number | boolean }> = [];
  for (const item of list as Array<{ at?: unknown; v?: unknown } | null>) {
    const at = typeof item?.at === 'number' ? item.at : typeof item?.at === 'string' ? Date.parse(item.at) : NaN;
    if (!Number.isSafeInteger(at) || at < MT_EPOCH_MS) return 'schedule entry times must be epoch ms (or ISO 8601) after 2025-01-01';
    if (!fits(item?.v)) return "only number and boolean schedule values of the datapoint's type go over the satellite";
    entries.push({ at, v: item.v });
  }
  const span = entries.length === 0 ? 0 : (Math.max(...entries.map((e) => e.at)) - Math.min(...entries.map((e) => e.at))) / 1000;
  if (span > MAX_MT_SCHEDULE_SPAN_S) return `a schedule spanning more than ${MAX_MT_SCHEDULE_SPAN_S} s does not fit the MT format`;
  const op: MtCommand = { kind: 'schedule', id: dp.id, entries, ref };
  try {
    // Checked before a counter is spent on it: the largest counter, so any real one fits too.
    encodeMt({ key: Buffer.alloc(16), context: '', datapoints: format.datapoints, commands: [] }, Number.MAX_SAFE_INTEGER, [op]);
  } catch (err) {
    return `the schedule does not fit one MT message: ${(err as Error).message}`;
  }
  return op;
}

/**
 * Sends one authenticated MT message through the RockBLOCK HTTP API (Rock7 "RockBLOCK Web
 * Services": POST form `imei`, `username`, `password`, `data` = hex; the answer is
 * `OK,<mt id>` or `FAILED,<code>,<text>`). Rock7 queues it until the modem's next session.
 */
export async function sendMt(o: RockblockMtOptions, imei: string, format: MtFormat, counter: number, op: MtCommand): Promise<string> {
  const data = encodeMt(format, counter, [op]).toString('hex');
  const form = new URLSearchParams({ imei, username: o.username, password: o.password, data });
  let text: string;
  try {
    const res = await (o.fetch ?? fetch)(o.url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form.toString(),
      signal: AbortSignal.timeout(o.timeoutMs),
    });
    text = (await res.text()).slice(0, 500).trim();
    if (!res.ok) throw new OutpostError('COMMAND_SEND_FAILED', `RockBLOCK MT API answered HTTP ${res.status}: ${text.slice(0, 200)}`);
  } catch (err) {
    if (err instanceof OutpostError) throw err;
    throw new OutpostError('COMMAND_SEND_FAILED', `RockBLOCK MT API: ${(err as Error).message}`, { cause: err });
  }
  const m = /^OK,(\S+)/.exec(text);
  if (!m) throw new OutpostError('COMMAND_SEND_FAILED', `RockBLOCK refused the MT message: ${text.slice(0, 200)}`);
  return m[1]!;
}
