import type express from 'express';
import type { IncomingMessage } from 'node:http';
import type { Security } from '../auth/middleware.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { DatapointDeleter } from '../datapoints/deletion.js';
import type { SiteDeps } from '../site/services.js';
import { dashboardRouter } from '../dashboard/index.js';
import { apiRoutes, type ApiDeps } from './api.js';
import { valuesRoutes } from './values.js';
import { backupRoutes, type BackupRoutesDeps } from './backup.js';
import { auditRoutes } from './audit.js';
import { datapointDeletionRoutes } from './datapoint-deletion.js';
import { systemRoutes, type SystemDeps } from './system.js';
import { alarmsRoutes, type AlarmRoutesDeps } from './alarms.js';
import { energyRoutes } from './energy.js';
import { siteRoutes } from './site.js';

/**
 * What the feature routes may need. Each plugin takes what it uses; a feature whose
 * part is absent (no audit trail, no dashboard, no users) is not mounted.
 */
export interface RouteDeps {
  /** Users, sessions, tokens (`/api/auth/*`, `/api/users`, `/api/tokens`). */
  security?: Security;
  /** Serve the web dashboard at `/` and `/ui/*`. */
  dashboard?: boolean;
  /** Health, metrics, datapoints, setpoints, sync and adapter state; also what the values route reads. */
  api?: ApiDeps;
  backup?: BackupRoutesDeps;
  audit?: AuditLog;
  deleter?: DatapointDeleter;
  /** The client's address as the auth layer sees it (trusted proxies applied). */
  clientAddress?: (req: IncomingMessage) => string;
  /** The System page (`/api/system`): disk, memory, clock sync, versions, restart. */
  system?: Omit<SystemDeps, 'audit' | 'clientAddress'>;
  /** Site roles, energy counters and tariff (`site` config): power flow and energy routes; they also read `api`. */
  site?: SiteDeps;
  /** Alarms and the event log (runtime/alarms): `/api/alarms`, `/api/events`. */
  alarms?: AlarmRoutesDeps;
}

/** One feature's routes: a function of the dependencies to a router, or undefined when the feature is off. */
export interface RoutePlugin {
  name: string;
  routes: (deps: RouteDeps) => express.Router | undefined;
}

/**
 * Every feature route of the HTTP API, in one place. One URL (method and path) belongs to
 * exactly one plugin, so mount order never decides who answers (test/runtime/http/routes.test.ts
 * walks the routers and checks it). Adapter routes (mounted by the adapter host under
 * `/api/adapters/<id>/`) and Node-RED (`/flows`, `/flows-api`, mounted by flows/) are not here.
 */
export const routePlugins: readonly RoutePlugin[] = [
  { name: 'auth', routes: (d) => d.security?.routes() },
  { name: 'dashboard', routes: (d) => (d.dashboard ? dashboardRouter() : undefined) },
  { name: 'api', routes: (d) => (d.api ? apiRoutes(d.api) : undefined) },
  {
    name: 'values',
    routes: (d) => {
      const api = d.api;
      return api ? valuesRoutes({ store: api.store, datapoint: (id) => api.registry.get(id), clock: api.clock }) : undefined;
    },
  },
  { name: 'backup', routes: (d) => (d.backup ? backupRoutes({ ...d.backup, clientAddress: d.backup.clientAddress ?? d.clientAddress }) : undefined) },
  { name: 'audit', routes: (d) => (d.audit ? auditRoutes(d.audit) : undefined) },
  { name: 'datapoint-deletion', routes: (d) => (d.deleter ? datapointDeletionRoutes(d.deleter, { clientAddress: d.clientAddress }) : undefined) },
  { name: 'system', routes: (d) => (d.system ? systemRoutes({ ...d.system, audit: d.audit, clientAddress: d.clientAddress }) : undefined) },
  { name: 'alarms', routes: (d) => (d.alarms ? alarmsRoutes(d.alarms, { audit: d.audit, clientAddress: d.clientAddress }) : undefined) },
  { name: 'energy', routes: (d) => (d.site && d.api ? energyRoutes({ site: d.site, api: d.api }) : undefined) },
  { name: 'site', routes: (d) => (d.site && d.api ? siteRoutes({ site: d.site, api: d.api }) : undefined) },
];

/** Mounts every plugin whose feature is on; returns the names mounted. */
export function mountRoutes(target: express.Router, deps: RouteDeps, plugins: readonly RoutePlugin[] = routePlugins): string[] {
  const mounted: string[] = [];
  for (const plugin of plugins) {
    const router = plugin.routes(deps);
    if (!router) continue;
    target.use(router);
    mounted.push(plugin.name);
  }
  return mounted;
}

/** One registered route: method (`USE` for mounted middleware such as static files), full path, and the router holding it. */
export interface RouteEntry {
  method: string;
  path: string;
  /** The router (or app) whose stack holds the route, as an object: compare by identity. */
  owner: object;
}

interface StackLayer {
  rawPath?: string | string[];
  handle?: { stack?: StackLayer[] };
  route?: { path: string | string[]; methods: Record<string, boolean>; stack: unknown[] };
}

/**
 * Every route in an Express app or router, with its full path: walks the router stacks
 * (path-less middleware mounted with `use` is entered, mounted sub-paths are joined).
 * Used by the test that checks one URL has one router, and handy when debugging 404s.
 */
export function routeTable(appOrRouter: unknown): RouteEntry[] {
  const root = appOrRouter as { router?: { stack?: StackLayer[] }; stack?: StackLayer[] };
  const owner = (root.router ?? root) as { stack?: StackLayer[] };
  const out: RouteEntry[] = [];
  walk(owner, '', out);
  return out;
}

function walk(router: { stack?: StackLayer[] }, prefix: string, out: RouteEntry[]): void {
  for (const layer of router.stack ?? []) {
    if (layer.route) {
      const paths = Array.isArray(layer.route.path) ? layer.route.path : [layer.route.path];
      for (const method of Object.keys(layer.route.methods)) {
        for (const p of paths) out.push({ method: method.toUpperCase(), path: join(prefix, p), owner: router });
      }
      continue;
    }
    const raw = layer.rawPath;
    const paths = raw === undefined ? ['/'] : Array.isArray(raw) ? raw : [raw];
    const sub = layer.handle?.stack;
    for (const p of paths) {
      if (sub) walk(layer.handle as { stack: StackLayer[] }, join(prefix, p), out);
      else if (p !== '/') out.push({ method: 'USE', path: join(prefix, p) + '/*', owner: router });
    }
  }
}

function join(prefix: string, path: string): string {
  if (path === '/' || path === '') return prefix || '/';
  return (prefix.endsWith('/') ? prefix.slice(0, -1) : prefix) + path;
}
