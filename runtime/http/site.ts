import express from 'express';
import type { SiteDeps } from '../site/services.js';
import type { ApiDeps } from './api.js';
import { resolveRoles, type SiteRoles } from '../site/roles.js';
import { siteFlow, STALE_AFTER_MS } from '../site/flow.js';

export interface SiteRouteDeps {
  site: SiteDeps;
  api: Pick<ApiDeps, 'registry' | 'store' | 'clock' | 'host'>;
}

/** What a section of `GET /api/site` is given: the deps and the power roles resolved for this request. */
export interface SiteSectionInput {
  deps: SiteRouteDeps;
  roles: SiteRoles;
}

/**
 * The sections of `GET /api/site`, one per feature: a feature (the Energy page's counter
 * roles, the tariff) adds its own key here and the handler stays as it is.
 */
export const siteSections: Record<string, (input: SiteSectionInput) => unknown> = {
  timezone: ({ deps }) => deps.site.timezone,
  /** What the Overview draws and why: each power datapoint with its role, configured or found by id. */
  power: ({ roles }) => ({ ...roles, staleAfterMs: STALE_AFTER_MS }),
};

/**
 * Site routes (viewer): `GET /api/site` (the site's roles and what else features add, see
 * `siteSections`) and `GET /api/site/flow` (the power flow now, from the store's latest
 * readings: runtime/site/flow.ts). Roles are resolved on each request, so datapoints an
 * adapter registers after start (an OCPP charger connecting) are drawn at the next load.
 */
export function siteRoutes(deps: SiteRouteDeps): express.Router {
  const r = express.Router();
  const roles = (): SiteRoles => {
    const types = new Map((deps.api.host()?.statuses() ?? []).map((a) => [a.id, a.type]));
    return resolveRoles(deps.site.config.power, deps.api.registry.list(), { adapterType: (id) => types.get(id) });
  };

  r.get('/api/site', (_req, res) => {
    const input: SiteSectionInput = { deps, roles: roles() };
    res.json(Object.fromEntries(Object.entries(siteSections).map(([key, section]) => [key, section(input)])));
  });

  r.get('/api/site/flow', (_req, res) => {
    res.json(siteFlow(roles(), (id) => deps.api.store.latest(id), deps.api.clock.now()));
  });

  return r;
}
