import { OutpostError } from '../../core/errors.js';
import type { Logger } from '../log.js';
import type { Store } from '../../storage/store.js';
import { DatapointSchema, validateSetpoint, type Datapoint, type DatapointInput, type SetpointRequest, type Value } from '../../core/datapoint.js';
import type { SetpointHandler } from '../adapter.js';
import { formatZodError } from '../../core/zod-error.js';

/** Deleted definitions remembered for `revive`, at most. */
const MAX_DELETED = 10_000;

/** Owners whose datapoints any authorised MQTT client may publish: plain MQTT devices and config-defined virtual points. */
export const EXTERNAL_OWNERS = new Set(['mqtt', 'virtual']);

export interface SetpointResult {
  id: string;
  v: Value;
  t: number;
}

/**
 * The datapoint registry: definitions (persisted in the store, published retained on
 * `.../meta`), ownership, and the setpoint handlers of running adapters.
 */
export class DatapointRegistry {
  private readonly byId = new Map<string, Datapoint>();
  private readonly handlers = new Map<string, SetpointHandler>();
  /** Which adapter claimed an id in this process: a second adapter claiming it is a config error. */
  private readonly claims = new Map<string, string>();
  private readonly listeners = new Set<(dp: Datapoint) => void>();
  /** Ids whose data is being deleted: registering one is refused (retryable) until `release`. */
  private readonly deleting = new Set<string>();
  /** Definitions of deleted datapoints, oldest first (bounded): their adapter reporting them again brings them back (`revive`). */
  private readonly deleted = new Map<string, Datapoint>();

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
  ) {}

  async load(): Promise<void> {
    for (const dp of await this.store.listDatapoints()) this.byId.set(dp.id, dp);
  }

  onChange(listener: (dp: Datapoint) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get(id: string): Datapoint | undefined {
    return this.byId.get(id);
  }

  list(): Datapoint[] {
    return [...this.byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  get size(): number {
    return this.byId.size;
  }

  /**
   * Registers or updates a datapoint. An adapter may take over a datapoint that was
   * auto-registered from plain MQTT; two adapters may not claim the same id.
   */
  async register(input: DatapointInput & { adapter: string }, handler?: SetpointHandler): Promise<Datapoint> {
    return (await this.registerMany([input], handler))[0]!;
  }

  /**
   * Registers or updates several datapoints with one durable write (a file's columns, an
   * adapter's points): each was one fsync. All or none: every definition is checked first.
   */
  async registerMany(inputs: ReadonlyArray<DatapointInput & { adapter: string }>, handler?: SetpointHandler): Promise<Datapoint[]> {
    const checked = inputs.map((input) => this.check(input));
    // Claimed before the write, and kept if it fails (the adapter registers again): a second
    // adapter registering the same ids meanwhile must fail.
    for (const dp of checked) if (!EXTERNAL_OWNERS.has(dp.adapter)) this.claims.set(dp.id, dp.adapter);
    const changed = checked.filter((dp) => {
      const existing = this.byId.get(dp.id);
      return !existing || JSON.stringify(existing) !== JSON.stringify(dp);
    });
    if (changed.length > 0) await this.store.putDatapoints(changed);
    const out: Datapoint[] = [];
    for (const dp of checked) {
      this.deleted.delete(dp.id);
      if (handler) this.handlers.set(dp.id, handler);
      if (!changed.includes(dp)) {
        out.push(this.byId.get(dp.id)!);
        continue;
      }
      this.byId.set(dp.id, dp);
      for (const listener of this.listeners) listener(dp);
      out.push(dp);
    }
    return out;
  }

  /** A definition parsed and checked against the registry (ownership), changing nothing. */
  private check(input: DatapointInput & { adapter: string }): Datapoint {
    const parsed = DatapointSchema.safeParse(input);
    if (!parsed.success) {
      const detail = formatZodError(parsed.error, { root: 'datapoint' });
      throw new OutpostError('DP_INVALID', `datapoint ${JSON.stringify((input as { id?: unknown }).id)}: ${detail}`);
    }
    const dp = parsed.data;
    if (dp.min !== undefined && dp.max !== undefined && dp.min > dp.max) {
      throw new OutpostError('DP_INVALID', `datapoint ${dp.id}: min ${dp.min} is above max ${dp.max}`);
    }
    if (this.deleting.has(dp.id)) throw new OutpostError('DP_DELETING', `datapoint ${dp.id} is being deleted; register it again once the deletion has ended`);
    const claimant = this.claims.get(dp.id);
    if (claimant !== undefined && claimant !== dp.adapter) {
      throw new OutpostError('DP_CONFLICT', `datapoint ${dp.id} is owned by adapter "${claimant}", not "${dp.adapter}"`);
    }
    return dp;
  }

  /**
   * Takes a datapoint out of the registry to delete it (runtime/datapoints/deletion.ts): it
   * is no longer listed, its values are refused as unknown, and registering it again is
   * refused with DP_DELETING until `release(id)`, so nothing new is written while its data
   * is deleted. The owning adapter's claim stays: it may register the id again afterwards.
   * Returns the definition it had (undefined: none).
   */
  remove(id: string): Datapoint | undefined {
    this.deleting.add(id);
    const dp = this.byId.get(id);
    this.byId.delete(id);
    // The setpoint handler stays: a running adapter still serves the actuator if it comes back.
    if (dp && !EXTERNAL_OWNERS.has(dp.adapter)) {
      this.deleted.delete(id);
      this.deleted.set(id, dp);
      if (this.deleted.size > MAX_DELETED) this.deleted.delete(this.deleted.keys().next().value!);
    }
    return dp;
  }

  /**
   * Datapoints of `adapter` among `ids` that were deleted while it ran, registered again with
   * the definition they had: an adapter that registered its datapoints once (at start, or once
   * per run as an import source does) and reports one again after it was deleted brings it
   * back, as documented, instead of having its values refused as unknown until it restarts.
   * Returns what was registered again (none: nothing to revive).
   */
  async revive(adapter: string, ids: Iterable<string>): Promise<Datapoint[]> {
    const defs: Datapoint[] = [];
    for (const id of new Set(ids)) {
      const dp = this.byId.has(id) ? undefined : this.deleted.get(id);
      if (dp && dp.adapter === adapter) defs.push(dp);
    }
    return defs.length > 0 ? this.registerMany(defs) : [];
  }

  /**
   * The deletion of `id` ended: it may be registered again. `restore`: the deletion failed
   * before anything was deleted, and the definition (still stored) is known again.
   */
  release(id: string, restore?: Datapoint): void {
    this.deleting.delete(id);
    if (restore && !this.byId.has(id)) {
      this.byId.set(id, restore);
      this.deleted.delete(id);
    }
  }

  /** True while `id` is being deleted. */
  isDeleting(id: string): boolean {
    return this.deleting.has(id);
  }

  /** Forgets the setpoint handlers of an adapter that stopped; its datapoints stay known. */
  dropHandlers(adapter: string): void {
    for (const [id] of this.handlers) {
      if (this.byId.get(id)?.adapter === adapter) this.handlers.delete(id);
    }
  }

  /**
   * Validates a setpoint against its actuator and checks that something can apply it (the
   * owning adapter is running, or the datapoint needs no device). Throws the reason; changes
   * nothing. What passes is the only form in which a setpoint reaches `/set` subscribers.
   */
  checkSetpoint(id: string, body: unknown, now: number): { dp: Datapoint; request: SetpointRequest } {
    const dp = this.byId.get(id);
    if (!dp) throw new OutpostError('DP_UNKNOWN', `unknown datapoint "${id}"`);
    const request = validateSetpoint(dp, body, now);
    if (!this.handlers.has(id) && !EXTERNAL_OWNERS.has(dp.adapter)) {
      throw new OutpostError('ADAPTER_UNAVAILABLE', `adapter "${dp.adapter}" that owns ${id} is not running`);
    }
    return { dp, request };
  }

  /**
   * Hands a checked setpoint to the owning adapter. Virtual and plain-MQTT actuators have no
   * device here: `storeValue` records the wanted value as their value.
   */
  async applySetpoint(dp: Datapoint, request: SetpointRequest, now: number, storeValue: (dp: Datapoint, v: Value) => Promise<void>): Promise<SetpointResult> {
    const id = dp.id;
    const handler = this.handlers.get(id);
    if (!handler) {
      if (!EXTERNAL_OWNERS.has(dp.adapter)) {
        throw new OutpostError('ADAPTER_UNAVAILABLE', `adapter "${dp.adapter}" that owns ${id} is not running`);
      }
      await storeValue(dp, request.v);
      return { id, v: request.v, t: now };
    }
    let applied: Awaited<ReturnType<SetpointHandler>>;
    try {
      applied = await handler({ id, ...request });
    } catch (err) {
      if (err instanceof OutpostError) throw err;
      this.log.debug({ err, id }, 'setpoint handler failed');
      throw new OutpostError('SETPOINT_FAILED', `${id}: ${(err as Error).message}`, { cause: err });
    }
    return { id, v: applied === undefined ? request.v : applied, t: now };
  }
}
