import { Writable } from 'node:stream';
import type { Server } from 'node:http';
import { execFileSync } from 'node:child_process';

import { join } from 'node:path';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { validateConfig } from '../../runtime/config/load.js';
import { adapterTypes } from '../../adapters/index.js';
import { createHttp, listen } from '../../runtime/http/server.js';
import { apiRoutes } from '../../runtime/http/api.js';
import { createLogger } from '../../runtime/log.js';
import { Security } from '../../runtime/auth/middleware.js';
import { VERSION } from '../../runtime/version.js';
import type { AdapterType } from '../../runtime/adapter.js';
import { tempDir, type Teardown } from '../helpers/teardown.js';

export const ADMIN_PASSWORD = 'admin-secret-pw-1';

export interface SecureSite extends TestGateway {
  /** Base URL of the HTTP server with users, sessions and the dashboard. */
  url: string;
  security: Security;
  /** Log records of the secured HTTP server (the gateway's are in `logs`). */
  httpLogs: Array<Record<string, unknown>>;
}

/**
 * A real gateway plus the secured HTTP server. Until gateway.ts mounts runtime/auth
 * itself, the secured server is composed here exactly as the wiring in the report
 * describes (Security → createHttp({ security, dashboard }) → apiRoutes) over the
 * gateway's own bus, store and registry. Once gateway.ts does it (detected by
 * /api/auth/me answering), the gateway's own server is used.
 */
export async function startSecureSite(
  t: Teardown,
  raw: Record<string, unknown> = {},
  options: { types?: AdapterType[]; tls?: { certFile: string; keyFile: string } } = {},
): Promise<SecureSite> {
  const auth = { loopback: 'none', admin: { username: 'admin', password: ADMIN_PASSWORD }, ...(raw.auth as object) };
  const gw = await startTestGateway(t, { ...raw, auth }, { types: options.types });
  const probe = await fetch(`${gw.httpUrl}/api/auth/me`).catch(() => undefined);
  const wired = probe !== undefined && probe.status !== 404 && !options.tls;
  const cfg = validateConfig({ dataDir: gw.dataDir, ...raw, auth }, new Map([...adapterTypes, ...(options.types ?? []).map((ty) => [ty.type, ty] as const)]));
  const httpLogs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) httpLogs.push(JSON.parse(line));
      cb();
    },
  });
  const log = createLogger({ level: 'debug', pretty: false, destination: sink });
  const security = new Security({ config: cfg.auth, dataDir: gw.dataDir, configTokens: cfg.http.tokens, log: log.child({ component: 'auth' }) });
  await security.init();
  if (wired) return { ...gw, url: gw.httpUrl, security, httpLogs: gw.logs };

  const g = gw.gateway;
  const http = createHttp({
    log: log.child({ component: 'http' }),
    tokens: cfg.http.tokens,
    maxBodyBytes: cfg.http.maxBodyBytes,
    bus: g.bus,
    websocketPath: '/mqtt',
    security,
    dashboard: true,
    tls: options.tls,
  });
  http.api.use(
    apiRoutes({
      registry: g.registry,
      store: g.store,
      ingest: g.ingest,
      metrics: g.metrics,
      host: () => g.host,
      bus: g.bus,
      clock: g.clock,
      version: VERSION,
      gateway: cfg.gateway,
      startedAt: Date.now(),
    }),
  );
  http.finish();
  const port = await listen(http.server, '127.0.0.1', 0);
  const server: Server = http.server;
  t.teardown(async () => {
    server.closeAllConnections?.();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return { ...gw, url: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`, security, httpLogs };
}

/** A cookie-jar-of-one client for the API, as the dashboard uses it. */
export class ApiClient {
  cookie: string | undefined;
  csrf: string | undefined;

  constructor(readonly base: string) {}

  async login(username: string, password: string): Promise<Response> {
    const res = await fetch(`${this.base}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, password }),
    });
    const setCookie = res.headers.get('set-cookie');
    if (res.ok && setCookie) {
      this.cookie = setCookie.split(';')[0];
      this.csrf = ((await res.clone().json()) as { csrf: string }).csrf;
    }
    return res;
  }

  request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
    const h: Record<string, string> = { ...headers };
    if (this.cookie) h.cookie = this.cookie;
    if (this.csrf && method !== 'GET' && !('x-csrf-token' in headers)) h['x-csrf-token'] = this.csrf;
    if (body !== undefined) h['content-type'] = 'application/json';
    return fetch(`${this.base}${path}`, { method, headers: h, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
  }
}

/** A self-signed certificate for 127.0.0.1 made with openssl, in a temp dir removed at teardown. */
export async function selfSignedCert(t: Teardown): Promise<{ certFile: string; keyFile: string; cert: string }> {
  const dir = await tempDir(t, 'outpost-tls-');
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  const { readFileSync } = await import('node:fs');
  return { certFile, keyFile, cert: readFileSync(certFile, 'utf8') };
}
