import { OutpostError } from '../../core/errors.js';
import { encodeMt, type MtCommand, type MtFormat } from '../../adapters/iridium/mt.js';
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
 * (adapters/iridium/mt.ts) carries setpoints of the Iridium table's datapoints (numbers and
 * booleans, scaled by `decimals`) and named commands, nothing else — no schedules, no strings.
 */
export function mtCommandOf(c: QueuedCommand, format: Pick<MtFormat, 'datapoints'>): MtCommand | string {
  if (c.command.type !== 'setpoint') return `a ${c.command.type} command does not fit the MT format (setpoints only)`;
  const id = c.command.id;
  const v = c.command.v;
  if (typeof id !== 'string' || !format.datapoints.some((d) => d.id === id)) return `datapoint ${String(id)} is not in the gateway's Iridium table`;
  if (typeof v !== 'number' && typeof v !== 'boolean') return 'only number and boolean setpoints go over the satellite';
  return { kind: 'setpoint', id, v };
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
