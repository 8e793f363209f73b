import express, { type RequestHandler } from 'express';
import { join } from 'node:path';
import { AuditLog } from '../../runtime/audit/audit-log.js';
import { Security } from '../../runtime/auth/middleware.js';
import { ProxyTrust } from '../../runtime/http/forwarded.js';
import { auditRoutes } from '../../runtime/http/audit.js';
import type { CentralConfig } from '../config.js';
import type { CentralHttp, RouteAccess, RouteSpec } from '../http/server.js';
import type { Logger } from '../log.js';

/** Expired sessions end within this even when nothing uses them (as on the gateway). */
const SESSION_SWEEP_MS = 60_000;
/** Login, password and user bodies are small JSON objects. */
const MAX_AUTH_BODY = '16kb';

/**
 * The routes of runtime/auth's `Security.routes()` router (login, logout, me, own password,
 * users, tokens), each listed with CentralHttp so the OpenAPI test sees it. The router is the
 * handler of each: mounted on the route's own path it matches its own route and nothing else.
 */
const SECURITY_ROUTES: ReadonlyArray<[RouteSpec['method'], string, RouteAccess]> = [
  ['post', '/api/auth/login', 'login'],
  ['post', '/api/auth/logout', 'login'],
  ['get', '/api/auth/me', 'login'],
  ['post', '/api/auth/password', 'api'],
  ['get', '/api/users', 'api'],
  ['post', '/api/users', 'api'],
  ['patch', '/api/users/:username', 'api'],
  ['delete', '/api/users/:username', 'api'],
  ['get', '/api/tokens', 'api'],
  ['post', '/api/tokens', 'api'],
  ['delete', '/api/tokens/:id', 'api'],
];

export interface WebSecurity {
  security: Security;
  audit: AuditLog;
  /** The first admin, when this start created it (a generated password is shown once by the CLI). */
  firstAdmin: Awaited<ReturnType<Security['init']>>;
  close(): Promise<void>;
}

/**
 * The gateway's users, sessions, roles, login throttles and audit trail (runtime/auth,
 * runtime/audit), in central's data dir: `<dataDir>/auth/users.json` (so `outpost user add
 * NAME --data-dir <dataDir>` manages central's users too) and `<dataDir>/audit/`. Nobody is
 * trusted by address (`loopback: none`: a proxy on this host makes every stranger local); the
 * API tokens of `http.tokens` read as viewers, as they did before there were logins; logins
 * are audited. The guard goes in front of every `api` route of `http`.
 */
export async function openWebSecurity(config: CentralConfig, http: CentralHttp, log: Logger): Promise<WebSecurity> {
  const audit = new AuditLog({ dir: join(config.dataDir, 'audit'), log: log.child({ component: 'audit' }) });
  await audit.open();
  const security = new Security({
    config: { loopback: 'none', admin: config.auth.admin, session: config.auth.session, login: config.auth.login, adminPaths: [], delegatedPaths: [] },
    dataDir: config.dataDir,
    configTokens: config.http.tokens,
    configTokenRole: 'viewer',
    proxies: new ProxyTrust(config.http.trustedProxies),
    audit,
    auditLogins: true,
    // Its own cookie: a gateway on the same host (another port) keeps its login (cookies ignore ports).
    cookieName: 'outpost_central_session',
    log: log.child({ component: 'auth' }),
  });
  let firstAdmin: WebSecurity['firstAdmin'];
  try {
    firstAdmin = await security.init();
  } catch (err) {
    await audit.close();
    throw err;
  }
  http.authenticateWith(security.guard);
  const sweeper = setInterval(() => security.sessions.sweep(), SESSION_SWEEP_MS);
  sweeper.unref();
  return {
    security,
    audit,
    firstAdmin,
    async close() {
      clearInterval(sweeper);
      await audit.close();
    },
  };
}

/** Login, users, tokens (runtime/auth's router) and `GET /api/audit` (admins; runtime/http/audit.ts), on central's routes. */
export function securityRoutes(http: CentralHttp, web: WebSecurity): void {
  const router = web.security.routes();
  const json = express.json({ limit: MAX_AUTH_BODY });
  for (const [method, path, access] of SECURITY_ROUTES) {
    const handlers: RequestHandler[] = method === 'get' || method === 'delete' ? [router] : [json, router];
    http.route(method, path, access, ...handlers);
  }
  http.route('get', '/api/audit', 'api', auditRoutes(web.audit));
}
