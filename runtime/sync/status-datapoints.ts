// The sync service's own datapoints (`gateway.sync.*`: backlog, rates, each link's state),
// defined once and written periodically. Separate from the service (service.ts): the same
// figures as its snapshot, as datapoints for the dashboard, flows and upstream.
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../log.js';
import type { Ingest } from '../ingest.js';
import type { DatapointRegistry } from '../datapoints/registry.js';
import type { LinkRuntime } from './link-runtime.js';
import type { SyncSnapshot } from './snapshot.js';

export interface DatapointsSource {
  snapshot: () => Promise<SyncSnapshot>;
  ingest: Pick<Ingest, 'acceptMany'>;
  clock: Clock;
  log: Logger;
}

/** Defines the `gateway.sync.*` datapoints: the service's figures and each link's state. */
export async function registerSyncDatapoints(reg: Pick<DatapointRegistry, 'register'>, links: readonly LinkRuntime[]): Promise<void> {
  const defs = [
    { id: 'gateway.sync.backlog', unit: 'records', description: 'Outbox records not yet acknowledged upstream' },
    { id: 'gateway.sync.backlog_bytes', unit: 'B', description: 'Estimated bytes of the sync backlog' },
    { id: 'gateway.sync.oldest_age', unit: 's', description: 'Age of the oldest unsent record' },
    { id: 'gateway.sync.drain_rate', unit: 'records/s', description: 'Records acknowledged upstream per second' },
    { id: 'gateway.sync.catchup', unit: 's', description: 'Estimated time to send the backlog (-1: not converging)' },
  ];
  for (const d of defs) await reg.register({ ...d, adapter: 'sync', kind: 'sensor', type: 'number' });
  for (const rt of links) {
    await reg.register({
      id: `gateway.sync.link.${rt.link.name}.up`,
      adapter: 'sync',
      kind: 'sensor',
      type: 'boolean',
      description: `sync link ${rt.link.name} connected`,
    });
    await reg.register({
      id: `gateway.sync.link.${rt.link.name}.state`,
      adapter: 'sync',
      kind: 'sensor',
      type: 'string',
      description: `sync link ${rt.link.name} state`,
    });
    await reg.register({
      id: `gateway.sync.link.${rt.link.name}.last_error`,
      adapter: 'sync',
      kind: 'sensor',
      type: 'string',
      description: `sync link ${rt.link.name}: last error`,
    });
  }
}

/** Writes the current values of the `gateway.sync.*` datapoints (every `datapointsIntervalMs`). */
export async function publishSyncDatapoints({ snapshot, ingest, clock, log }: DatapointsSource): Promise<void> {
  try {
    const s = await snapshot();
    const t = clock.now();
    await ingest.acceptMany('sync', [
      { id: 'gateway.sync.backlog', v: s.backlogRecords, t },
      { id: 'gateway.sync.backlog_bytes', v: s.backlogBytes, t },
      { id: 'gateway.sync.oldest_age', v: Math.round(s.oldestUnsentAgeSeconds), t },
      { id: 'gateway.sync.drain_rate', v: Math.round(s.drainRate), t },
      { id: 'gateway.sync.catchup', v: s.catchUpSeconds === null ? -1 : Math.round(s.catchUpSeconds), t },
      ...s.links.flatMap((l) => [
        { id: `gateway.sync.link.${l.name}.up`, v: l.state === 'up' || l.state === 'blocked', t },
        { id: `gateway.sync.link.${l.name}.state`, v: l.state, t },
        // Bounded: an error message is one line, but a server may put a page into it.
        { id: `gateway.sync.link.${l.name}.last_error`, v: (l.lastError ?? '').slice(0, 500), t },
      ]),
    ]);
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'sync datapoints not published');
  }
}
