import express from 'express';
import { plainAddress } from '../net.js';
import type { IncomingMessage } from 'node:http';
import { OutpostError } from '../../core/errors.js';
import { isNoRoom } from '../../storage/level/space-reserve.js';
import type { DatapointRegistry } from '../datapoints/registry.js';
import type { Store } from '../../storage/store.js';
import type { Ingest } from '../ingest.js';
import type { Metrics } from '../metrics.js';
import type { AdapterHost } from '../adapter-host.js';
import type { SyncService } from '../sync/service.js';
import type { Bus } from '../bus.js';
import type { Clock } from '../../core/clock.js';
import { sourceOf } from '../audit/actor.js';
import type { Principal } from '../auth/roles.js';
import type { AdapterType } from '../adapter.js';
import { servedStatusSchema } from '../status-schema.js';

export interface ApiDeps {
  registry: DatapointRegistry;
  store: Store;
  ingest: Ingest;
  metrics: Metrics;
  host: () => AdapterHost | undefined;
  sync?: () => SyncService | undefined;
  bus: Bus;
  clock: Clock;
  version: string;
  gateway: { id: string; name?: string };
  startedAt: number;
  /** The client's address as the auth layer sees it (trusted proxies applied); default the socket peer. */
  clientAddress?: (req: IncomingMessage) => string;
  /** Adapter types of this build: their status schemas (labels, units, words) for the adapter cards. */
  adapterTypes?: ReadonlyMap<string, AdapterType>;
}

/**
 * The core API: health, metrics, datapoint list and metadata, setpoints, sync and adapter state.
 * Values of a datapoint are served by ./values.ts (raw and aggregated in one handler).
 */
export function apiRoutes(deps: ApiDeps): express.Router {
  const r = express.Router();

  r.get('/healthz', (_req, res) => {
    const storage = deps.store.stats();
    const adapters = deps.host()?.statuses() ?? [];
    const failing = adapters.filter((a) => a.state === 'error').map((a) => a.id);
    const ok = !storage.error;
    res.status(ok ? 200 : 503).json({
      status: ok ? (failing.length ? 'degraded' : 'ok') : 'error',
      version: deps.version,
      gateway: deps.gateway.id,
      uptimeSeconds: Math.round((deps.clock.now() - deps.startedAt) / 1000),
      storage: storage.error
        ? {
            state: storage.readOnly ? 'read-only' : 'error',
            error: storage.error,
            ...storage.room,
            // A full disk recovers by itself once there is room; anything else may need a repair.
            ...(isNoRoom(storage.error)
              ? { recovery: 'free disk space: writes resume without a restart' }
              : { repair: 'stop the gateway, then run: outpost repair -c <config>' }),
          }
        : { state: 'ok', outboxDepth: storage.outboxDepth },
      adapters: Object.fromEntries(adapters.map((a) => [a.id, a.state])),
    });
  });

  r.get('/metrics', async (_req, res) => {
    const stats = deps.store.stats();
    deps.metrics.storagePending.set(stats.pending);
    deps.metrics.outboxSeq.set(stats.lastSeq);
    deps.metrics.mqttClients.set(deps.bus.connectedClients);
    deps.metrics.datapoints.set(deps.registry.size);
    res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });

  r.get('/api/datapoints', (req, res) => {
    const q = typeof req.query.q === 'string' ? req.query.q.toLowerCase() : undefined;
    const adapter = typeof req.query.adapter === 'string' ? req.query.adapter : undefined;
    const items = deps.registry
      .list()
      .filter((dp) => (!q || dp.id.includes(q) || (dp.description ?? '').toLowerCase().includes(q)) && (!adapter || dp.adapter === adapter))
      .map((dp) => ({ ...dp, latest: deps.store.latest(dp.id) ?? null }));
    res.json({ items, count: items.length });
  });

  r.get('/api/datapoints/:id', (req, res) => {
    const dp = deps.registry.get(req.params.id);
    if (!dp) throw new OutpostError('DP_UNKNOWN', `unknown datapoint "${req.params.id}"`);
    res.json({ ...dp, latest: deps.store.latest(dp.id) ?? null });
  });

  r.post('/api/datapoints/:id/setpoint', async (req, res) => {
    // Named by who is logged in (user alice, token deploybot), not by the address alone.
    const address = deps.clientAddress?.(req) ?? plainAddress(req.socket.remoteAddress ?? 'unknown');
    const result = await deps.ingest.setpoint(req.params.id, req.body, sourceOf(res.locals.principal as Principal | undefined, address));
    res.json({ ok: true, ...result });
  });

  r.get('/api/sync', async (_req, res) => {
    const sync = deps.sync?.();
    res.json(sync ? await sync.snapshot() : { enabled: false });
  });

  /** Description and status schema (with the host's own fields) of each type, by type name. */
  const typeInfo = (names: Iterable<string>): Record<string, { description: string; statusSchema: ReturnType<typeof servedStatusSchema> }> => {
    const out: Record<string, { description: string; statusSchema: ReturnType<typeof servedStatusSchema> }> = {};
    for (const name of names) {
      const type = deps.adapterTypes?.get(name);
      if (type) out[name] = { description: type.description, statusSchema: servedStatusSchema(type) };
    }
    return out;
  };

  // `types`: the schemas of the types listed, so a page can render the cards without asking again.
  r.get('/api/adapters', (_req, res) => {
    const items = deps.host()?.statuses() ?? [];
    res.json({ items, types: typeInfo(new Set(items.map((a) => a.type))) });
  });

  // Every adapter type of this build (the dashboard's adapter cards read it once).
  r.get('/api/adapters/types', (_req, res) => {
    res.json({ types: typeInfo(deps.adapterTypes?.keys() ?? []) });
  });

  return r;
}
