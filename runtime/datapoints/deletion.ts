import { OutpostError } from '../../core/errors.js';
import type { Logger } from '../log.js';
import type { AuditSink } from '../audit/entry.js';
import { audited } from '../audit/record.js';
import type { CommandSource } from '../audit/actor.js';
import type { Topics } from '../topics.js';
import type { DatapointDeletion, Store } from '../../storage/store.js';
import type { DatapointRegistry } from './registry.js';
import { DATAPOINT_ID, type Datapoint } from '../../core/datapoint.js';

export interface DatapointDeletionDeps {
  registry: Pick<DatapointRegistry, 'get' | 'remove' | 'release' | 'isDeleting'>;
  store: Pick<Store, 'deleteDatapoint' | 'storedPoints' | 'listDatapoints' | 'putDatapoints'>;
  bus: { publish(topic: string, payload: string | Buffer, options?: { retain?: boolean }): Promise<void> };
  topics: Pick<Topics, 'value' | 'meta'>;
  /** QoS 0 readings buffered before the datapoint left the registry are written (and deleted) too; its reading times are forgotten. */
  ingest: { flush(): Promise<void>; forget(id: string): void };
  /** Ids of the configuration's `datapoints:` (virtual points): not deleted, the config defines them. */
  configured(id: string): boolean;
  /** State of an adapter instance (`running`, `error`, …); undefined when there is no such instance. */
  adapterState(adapter: string): string | undefined;
  audit?: AuditSink;
  log: Logger;
  /** Called after a deletion (metrics: the datapoint count). */
  onDeleted?(id: string): void;
}

/** What `DELETE /api/datapoints/<id>` answers. */
export interface DeletionResult {
  ok: true;
  id: string;
  /** Raw readings deleted. */
  points: number;
  /** Rollup buckets deleted (all resolutions). */
  rollups: number;
  /** A stored definition was deleted (false: only data without one was left, e.g. after a cut-short deletion). */
  definition: boolean;
  /** The adapter that owned it, if it had a definition. */
  adapter?: string;
  /** Its owner is running and may register it again (`note` says when). */
  mayReturn: boolean;
  note?: string;
  /** Outbox records of the datapoint already queued for upstream stay: they are history in flight. */
  outboxKept: true;
}

/** What `GET /api/datapoints/<id>/stored` answers: what a deletion would remove. */
export interface StoredSummary {
  id: string;
  points: number;
  rollups: number;
  oldest?: number;
  newest?: number;
  adapter?: string;
  /** Why it cannot be deleted (a config-defined datapoint), if so. */
  refusal?: string;
  mayReturn: boolean;
  note?: string;
}

/**
 * Deleting a datapoint with its data (issue 21): the definition, raw readings, rollups,
 * current buckets and latest value (storage), the retained `…/value` and `…/meta` topics (an
 * empty retained payload, so the broker forgets them), and the registry entry. Outbox
 * records already queued stay: they are history on its way upstream. Datapoints of the
 * configuration's `datapoints:` are refused (edit the config). A datapoint of a running
 * adapter is deleted, and comes back when its device (or the next imported file) reports it.
 */
export class DatapointDeleter {
  constructor(private readonly d: DatapointDeletionDeps) {}

  private refusal(id: string): string | undefined {
    if (!this.d.configured(id)) return undefined;
    return `datapoint ${id} is defined in the configuration file (datapoints:): remove it there and restart the gateway; its stored data can then be deleted here`;
  }

  /** Whether the datapoint may come back by itself after a deletion, and why. */
  private returning(dp: Datapoint | undefined): { mayReturn: boolean; note?: string } {
    if (!dp) return { mayReturn: false };
    if (dp.adapter === 'mqtt') return { mayReturn: true, note: `a plain MQTT device publishing ${this.d.topics.value(dp.id)} creates ${dp.id} again` };
    const state = this.d.adapterState(dp.adapter);
    if (state === undefined || state === 'stopped') return { mayReturn: false };
    return { mayReturn: true, note: `adapter "${dp.adapter}" is ${state}: it registers ${dp.id} again when its device or the next imported file reports it` };
  }

  async stored(id: string): Promise<StoredSummary> {
    const dp = this.d.registry.get(id);
    const stored = await this.storedOf(id);
    if (!dp && stored.points === 0 && stored.rollups === 0) throw new OutpostError('DP_UNKNOWN', `unknown datapoint "${id}"`);
    const refusal = this.refusal(id);
    return { id, ...stored, ...(dp ? { adapter: dp.adapter } : {}), ...(refusal ? { refusal } : {}), ...this.returning(dp) };
  }

  private async storedOf(id: string): Promise<{ points: number; rollups: number; oldest?: number; newest?: number }> {
    if (!DATAPOINT_ID.test(id)) return { points: 0, rollups: 0 };
    if (!this.d.store.storedPoints) throw new OutpostError('INTERNAL', 'this storage engine cannot count a datapoint’s readings');
    return this.d.store.storedPoints(id);
  }

  /** Deletes `id` for `source` (audited, refusals too). */
  delete(id: string, source: CommandSource, check?: () => void): Promise<DeletionResult> {
    return audited(
      this.d.audit,
      { action: 'datapoint.delete', ...source, target: id },
      async () => {
        check?.();
        return this.run(id, source);
      },
      (r) => ({ points: r.points, rollups: r.rollups, ...(r.adapter ? { adapter: r.adapter } : {}), definition: r.definition, mayReturn: r.mayReturn }),
    );
  }

  private async run(id: string, source: CommandSource): Promise<DeletionResult> {
    const { registry, store } = this.d;
    if (!DATAPOINT_ID.test(id)) throw new OutpostError('DP_UNKNOWN', `unknown datapoint "${id}"`);
    if (registry.isDeleting(id)) throw new OutpostError('DP_DELETING', `datapoint ${id} is being deleted already`);
    const refusal = this.refusal(id);
    if (refusal) throw new OutpostError('DP_CONFIG_OWNED', refusal);
    if (!store.deleteDatapoint) throw new OutpostError('INTERNAL', 'this storage engine cannot delete a datapoint');
    const dp = registry.get(id);
    if (!dp) {
      // No definition: data left behind without one (a deletion cut short) is deleted too.
      const stored = await this.storedOf(id);
      if (stored.points === 0 && stored.rollups === 0) throw new OutpostError('DP_UNKNOWN', `unknown datapoint "${id}"`);
    }
    const started = Date.now();
    // Out of the registry first: its values are refused as unknown, and it cannot be registered again, while its data goes.
    registry.remove(id);
    let deleted: DatapointDeletion;
    try {
      await this.d.ingest.flush();
      deleted = await store.deleteDatapoint(id);
    } catch (err) {
      // Nothing was deleted when the definition is still stored (it goes first): it stays known.
      const kept = dp !== undefined && (await store.listDatapoints().catch((): Datapoint[] => [])).some((x) => x.id === id);
      registry.release(id, kept ? dp : undefined);
      throw err;
    }
    registry.release(id);
    this.d.ingest.forget(id);
    // An empty retained payload: the broker forgets the retained value and metadata.
    await this.d.bus.publish(this.d.topics.value(id), '', { retain: true });
    await this.d.bus.publish(this.d.topics.meta(id), '', { retain: true });
    this.d.onDeleted?.(id);
    const back = this.returning(dp);
    const result: DeletionResult = {
      ok: true,
      id,
      points: deleted.points,
      rollups: deleted.rollups,
      definition: deleted.definition,
      ...(dp ? { adapter: dp.adapter } : {}),
      ...back,
      outboxKept: true,
    };
    this.d.log.info(
      { id, points: deleted.points, rollups: deleted.rollups, adapter: dp?.adapter, by: source.actor, address: source.address, ms: Date.now() - started },
      'datapoint deleted with its data',
    );
    return result;
  }
}
