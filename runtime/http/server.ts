import express, { type NextFunction, type Request, type Response } from 'express';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import { WebSocketServer } from 'ws';
import { OutpostError } from '../../core/errors.js';
import type { Logger } from '../log.js';
import { isLoopbackAddress } from '../net.js';
import { verifyToken } from '../auth/passwords.js';
import type { UpgradeHandler } from '../adapter.js';
import type { Bus } from '../bus.js';
import type { Security } from '../auth/middleware.js';
import { securityHeaders } from '../auth/headers.js';
import { mountRoutes, type RouteDeps } from './routes.js';

/** How often sessions past their idle or maximum age are looked for. */
const SESSION_SWEEP_MS = 30_000;

export interface HttpOptions {
  log: Logger;
  tokens: readonly string[];
  maxBodyBytes: number;
  bus: Bus;
  websocketPath: string | undefined;
  /**
   * Users, sessions, tokens, roles and CSRF (runtime/auth). Without it the server keeps
   * the foundation's rule: loopback trusted, anyone else needs a configured bearer token.
   */
  security?: Security;
  /** Serve HTTPS from these PEM files instead of HTTP. */
  tls?: { certFile: string; keyFile: string };
  /** Serve the web dashboard at `/` and `/ui/*`. */
  dashboard?: boolean;
}

export interface HttpParts {
  app: express.Express;
  /** Routes of the core API are added here. */
  api: express.Router;
  /** Adapter routes, mounted after the API. */
  adapters: express.Router;
  upgrades: Map<string, UpgradeHandler>;
  server: Server;
  /**
   * Mounts the feature routes (runtime/http/routes.ts) on `api`, with this server's
   * `security` and `dashboard`; once. `finish()` does it with no more deps if not done yet.
   */
  routes(deps?: Omit<RouteDeps, 'security' | 'dashboard'>): string[];
  /** Call after all routes are mounted: adds 404 and error handlers. */
  finish(): void;
}

/**
 * Loopback clients are trusted (the dashboard's user system replaces this);
 * anything else needs `Authorization: Bearer <token>` with a configured token hash.
 */
function authenticate(tokens: readonly string[]) {
  return (req: Request, _res: Response, next: NextFunction): void => {
    if (isLoopbackAddress(req.socket.remoteAddress)) return next();
    const header = req.headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (match && verifyToken(match[1]!, tokens)) return next();
    next(new OutpostError('NOT_AUTHENTICATED', 'a bearer token is required for clients outside this host'));
  };
}

export function createHttp(options: HttpOptions): HttpParts {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(securityHeaders({ tls: options.tls !== undefined }));
  const api = express.Router();
  const adapters = express.Router();
  const upgrades = new Map<string, UpgradeHandler>();

  // Health is public: it carries no data, and load balancers and systemd probes need it.
  // Who is asking is settled before any body is read: strangers cannot make us parse.
  const security = options.security;
  // A live connection must not outlive its login: logout, expiry, a removed or changed user.
  security?.sessions.onEnd((id) => {
    const closed = options.bus.endSession(id);
    if (closed > 0) options.log.info({ closed }, 'dashboard live connections closed: their session ended');
  });
  if (security) app.use(security.guard);
  else app.use((req, res, next) => (req.path === '/healthz' ? next() : authenticate(options.tokens)(req, res, next)));
  app.use(express.json({ limit: options.maxBodyBytes }));
  app.use(api);
  app.use(adapters);

  const server = options.tls ? createHttpsServer(readTls(options.tls), app) : createServer(app);
  if (security) {
    // Expired sessions end within a minute even when nothing uses them (their live connections close).
    const sweeper = setInterval(() => security.sessions.sweep(), SESSION_SWEEP_MS);
    sweeper.unref();
    server.on('close', () => clearInterval(sweeper));
  }
  const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
  server.on('upgrade', (req, socket, head) => {
    // Node drops its own error listener on an upgrade: a reset while we refuse would throw.
    socket.on('error', (err) => options.log.debug({ err, path: req.url }, 'websocket upgrade connection failed'));
    const path = (req.url ?? '/').split('?')[0]!;
    if (options.websocketPath && path === options.websocketPath) {
      if (security) {
        // The dashboard's MQTT connection: same checks as the REST API, plus the Origin.
        const principal = security.upgradePrincipal(req);
        if (!principal) {
          socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n');
          return;
        }
        req.outpostPrincipal = principal;
      }
      wss.handleUpgrade(req, socket, head, (ws) => options.bus.handleWebSocket(ws, req));
      return;
    }
    for (const [prefix, handler] of upgrades) {
      if (path === prefix || path.startsWith(prefix.endsWith('/') ? prefix : prefix + '/')) return handler(req, socket, head);
    }
    socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
  });

  let routesMounted = false;
  const routes = (deps: Omit<RouteDeps, 'security' | 'dashboard'> = {}): string[] => {
    if (routesMounted) throw new Error('HTTP feature routes are already mounted');
    routesMounted = true;
    return mountRoutes(api, { ...deps, security, dashboard: options.dashboard });
  };
  const finish = (): void => {
    if (!routesMounted) routes();
    app.use((req, _res, next) => next(new OutpostError('NOT_FOUND', `no route for ${req.method} ${req.path}`)));
    app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
      let e: OutpostError;
      if (err instanceof OutpostError) e = err;
      else if ((err as { type?: string }).type === 'entity.parse.failed') e = new OutpostError('BAD_REQUEST', 'request body is not valid JSON');
      else if ((err as { type?: string }).type === 'entity.too.large')
        e = new OutpostError('BODY_TOO_LARGE', `request body is larger than ${options.maxBodyBytes} bytes`);
      else {
        options.log.error({ err, method: req.method, path: req.path }, 'unhandled error in HTTP handler');
        e = new OutpostError('INTERNAL', 'internal error');
      }
      res.status(e.status).json({ error: e.toJSON() });
    });
  };
  return { app, api, adapters, upgrades, server, routes, finish };
}

function readTls(tls: { certFile: string; keyFile: string }): { cert: Buffer; key: Buffer } {
  try {
    return { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) };
  } catch (err) {
    throw new OutpostError('CONFIG_INVALID', `http.tls: cannot read ${(err as { path?: string }).path ?? 'certificate files'}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

export async function listen(server: Server, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  return typeof addr === 'object' && addr ? addr.port : port;
}
