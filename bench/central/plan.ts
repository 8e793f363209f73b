/**
 * What the simulated fleet sends, derived from a few numbers so that the load worker (which
 * encodes the MQTT batches), the COPY baseline (which writes the same rows) and the checks
 * after each run (which expect them) agree without passing rows between threads.
 *
 * Gateway g's outbox holds `datapoints × readings` records, seq 1..R: record k (0-based) is
 * datapoint `k % datapoints` at round `floor(k / datapoints)`, one round a second — a site
 * sampling every datapoint once a second, as its outbox numbers the readings.
 */
import { batchKey, type Batch } from '../../runtime/sync/link.js';

export interface IngestPlan {
  gateways: number;
  datapoints: number;
  /** Readings per datapoint (rounds). */
  readings: number;
  /** Records per batch (the link's `batchRecords`; a live link sends what accumulated since the last one). */
  batchRecords: number;
  /** Time of round 0, epoch ms (whole seconds). */
  t0: number;
}

export const gatewayId = (g: number): string => `gw-${String(g).padStart(4, '0')}`;
export const datapointId = (d: number): string => `bench.dp${String(d).padStart(3, '0')}`;

/** Records per gateway. */
export const recordsPerGateway = (p: IngestPlan): number => p.datapoints * p.readings;
export const totalRecords = (p: IngestPlan): number => p.gateways * recordsPerGateway(p);
export const batchesPerGateway = (p: IngestPlan): number => Math.ceil(recordsPerGateway(p) / p.batchRecords);

/** The value of record k of gateway g: one decimal, different per gateway, datapoint and round. */
export function readingValue(g: number, k: number): number {
  return (((g * 7919 + k * 104_729) % 20_000) - 5_000) / 10;
}

export function readingTime(p: IngestPlan, k: number): number {
  return p.t0 + Math.floor(k / p.datapoints) * 1000;
}

/** Batch b (0-based) of gateway g, as the gateway's outbox hands it to its link. */
export function batchOf(p: IngestPlan, g: number, b: number): Batch {
  const from = b * p.batchRecords;
  const to = Math.min(recordsPerGateway(p), from + p.batchRecords);
  const records = [];
  for (let k = from; k < to; k++) records.push({ seq: k + 1, id: datapointId(k % p.datapoints), t: readingTime(p, k), v: readingValue(g, k) });
  const gw = gatewayId(g);
  return { key: batchKey(gw, from + 1, to), gatewayId: gw, first: from + 1, last: to, records, lane: 'history' };
}
