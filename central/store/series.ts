/**
 * How central's data sits in one LevelStore (storage/level): every kind of record is a series
 * of that engine, so each insert is one atomic, fsynced `write` (storage/DESIGN.md "Group
 * commit": one writer's points are never split across commits) and every read is the engine's
 * range scan. Gateway ids (`[a-z0-9][a-z0-9_-]*`) hold no `/` and datapoint ids
 * (`[a-z0-9_.-]`) none either, so `<gateway>/<datapoint>` is unambiguous; the engine's
 * separator `!` appears in neither. Internal series start with `$`, which no gateway id does.
 *
 * | series              | t                         | v                                   |
 * | ------------------- | ------------------------- | ----------------------------------- |
 * | `<gw>/<datapoint>`  | measurement time          | the reading (rollups as on a site)  |
 * | `$seq/<gw>`         | outbox seq                | null: "this seq is stored"          |
 * | `$rx/<gw>`          | arrival                   | receipt {via, lane, key, stored, duplicates} |
 * | `$status/<gw>`      | arrival                   | status document                     |
 * | `$sat/<gw>`         | transmit time + momsn % 1000 | MO message (credits, position)   |
 * | `$cmd/<gw>`         | cursor (0: MT counter)    | command, its sends and its ack; at 0 the last Iridium MT counter |
 *
 * A `null` value and JSON objects are kept raw (no rollups: storage/DESIGN.md "Rollups").
 */
export type InternalKind = 'seq' | 'rx' | 'status' | 'sat' | 'cmd';

export const readingSeries = (gateway: string, id: string): string => `${gateway}/${id}`;
export const internalSeries = (kind: InternalKind, gateway: string): string => `$${kind}/${gateway}`;

export type ParsedSeries = { kind: 'reading'; gateway: string; id: string } | { kind: InternalKind; gateway: string };

const INTERNAL = new Set<string>(['seq', 'rx', 'status', 'sat', 'cmd']);

export function parseSeries(series: string): ParsedSeries | undefined {
  const slash = series.indexOf('/');
  if (slash <= 0) return undefined;
  const head = series.slice(0, slash);
  const rest = series.slice(slash + 1);
  if (head.startsWith('$')) {
    const kind = head.slice(1);
    return INTERNAL.has(kind) ? { kind: kind as InternalKind, gateway: rest } : undefined;
  }
  return { kind: 'reading', gateway: head, id: rest };
}

/**
 * Time key of a satellite message: its transmit time plus `momsn % 1000` ms, so a webhook
 * delivered twice writes the same entry (idempotent) and two messages sent in one second
 * (a session takes longer) do not collide.
 */
export function satelliteKey(transmitTime: number, momsn: number): number {
  return Math.floor(transmitTime / 1000) * 1000 + (momsn % 1000);
}
