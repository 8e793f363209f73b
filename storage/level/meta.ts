import { HIGH, metaKey } from './keys.js';
import { TEXT, text, type Snapshot, type StoreDb, type WriteOps } from './db.js';
import { DatapointSchema, type Datapoint } from '../../core/datapoint.js';

/** Datapoint definitions, `m!<id>` → the definition as JSON text (storage/DESIGN.md "Key layout"). */
export class DatapointDefinitions {
  constructor(
    private readonly level: StoreDb,
    private readonly write: WriteOps,
    private readonly sync: boolean,
  ) {}

  async put(dps: readonly Datapoint[]): Promise<void> {
    await this.write(
      dps.map((dp) => ({ type: 'put' as const, key: metaKey(dp.id), value: JSON.stringify(dp) })),
      this.sync,
    );
  }

  /** Every definition that validates (others are skipped: written by a version with other rules). */
  async list(snapshot?: Snapshot): Promise<Datapoint[]> {
    const out: Datapoint[] = [];
    for await (const value of this.level.values({ gte: 'm!', lt: 'm!' + HIGH, ...TEXT, ...(snapshot ? { snapshot } : {}) })) {
      const parsed = DatapointSchema.safeParse(JSON.parse(text(value)));
      if (parsed.success) out.push(parsed.data);
    }
    return out;
  }

  /** One definition as stored, parsed but not validated (retention reads its own `retention`); undefined: none or not JSON. */
  async stored(id: string): Promise<unknown> {
    const raw = await this.level.get(metaKey(id), TEXT);
    if (raw === undefined) return undefined;
    try {
      return JSON.parse(text(raw));
    } catch {
      return undefined;
    }
  }
}
