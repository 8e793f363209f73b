import express from 'express';
import type { SiteDeps } from '../site/services.js';
import { classifyCounters } from '../site/energy-roles.js';
import { siteEnergy } from '../site/energy.js';
import { parseAt, parsePeriodKind } from '../site/energy-periods.js';
import type { ApiDeps } from './api.js';

export interface EnergyRouteDeps {
  site: SiteDeps;
  api: Pick<ApiDeps, 'registry' | 'store' | 'clock'>;
}

/**
 * Energy routes (viewer):
 * - `GET /api/site/energy?period=day|week|month|year&at=<YYYY-MM-DD | epoch ms | ISO date-time>`:
 *   the Energy page's figures for the local period containing `at` (default: today's day),
 *   runtime/site/energy.ts;
 * - `GET /api/site/energy/counters`: every meter counter with the role it counts
 *   (runtime/site/energy-roles.ts), what the Consumption page ranks and lists.
 * Roles are worked out on each request, so counters an adapter registers later count at once.
 */
export function energyRoutes(deps: EnergyRouteDeps): express.Router {
  const r = express.Router();

  r.get('/api/site/energy', async (req, res) => {
    const now = deps.api.clock.now();
    const kind = parsePeriodKind(req.query.period);
    const at = parseAt(req.query.at, deps.site.timezone, now);
    const report = await siteEnergy(
      {
        store: deps.api.store,
        datapoints: deps.api.registry.list(),
        energy: deps.site.config.energy,
        tariff: deps.site.config.tariff,
        timezone: deps.site.timezone,
        now,
      },
      kind,
      at,
    );
    res.json(report);
  });

  r.get('/api/site/energy/counters', (_req, res) => {
    res.json(classifyCounters(deps.api.registry.list(), deps.site.config.energy));
  });

  return r;
}
