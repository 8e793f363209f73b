import express, { type NextFunction, type Request, type Response } from 'express';
import { createServer, type Server } from 'node:http';
import { WebSocketServer } from 'ws';
import { OutpostError } from '../errors.js';
import type { Logger } from '../log.js';
import { isLoopbackAddress } from '../net.js';
import { verifyToken } from '../auth/passwords.js';
import type { UpgradeHandler } from '../adapter.js';
import type { Bus } from '../bus.js';

export interface HttpOptions {
  log: Logger;
  tokens: readonly string[];
  maxBodyBytes: number;
  bus: Bus;
  websocketPath: string | undefined;
}

export interface HttpParts {
  app: express.Express;
  /** Routes of the core API are added here. */
  api: express.Router;
  /** Adapter routes, mounted after the API. */
  adapters: express.Router;
  upgrades: Map<string, UpgradeHandler>;
  server: Server;
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
  app.use((_req, res, next) => {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Referrer-Policy', 'no-referrer');
    next();
  });
  const api = express.Router();
  const adapters = express.Router();
  const upgrades = new Map<string, UpgradeHandler>();

  // Health is public: it carries no data, and load balancers and systemd probes need it.
  app.use(express.json({ limit: options.maxBodyBytes }));
  app.use((req, res, next) => (req.path === '/healthz' ? next() : authenticate(options.tokens)(req, res, next)));
  app.use(api);
  app.use(adapters);

  const server = createServer(app);
  const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
  server.on('upgrade', (req, socket, head) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (options.websocketPath && path === options.websocketPath) {
      wss.handleUpgrade(req, socket, head, (ws) => options.bus.handleWebSocket(ws, req));
      return;
    }
    for (const [prefix, handler] of upgrades) {
      if (path === prefix || path.startsWith(prefix.endsWith('/') ? prefix : prefix + '/')) return handler(req, socket, head);
    }
    socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
  });

  const finish = (): void => {
    app.use((req, _res, next) => next(new OutpostError('NOT_FOUND', `no route for ${req.method} ${req.path}`)));
    app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
      let e: OutpostError;
      if (err instanceof OutpostError) e = err;
      else if ((err as { type?: string }).type === 'entity.parse.failed') e = new OutpostError('BAD_REQUEST', 'request body is not valid JSON');
      else if ((err as { type?: string }).type === 'entity.too.large') e = new OutpostError('BAD_REQUEST', `request body is larger than ${options.maxBodyBytes} bytes`);
      else {
        options.log.error({ err, method: req.method, path: req.path }, 'unhandled error in HTTP handler');
        e = new OutpostError('INTERNAL', 'internal error');
      }
      res.status(e.status).json({ error: e.toJSON() });
    });
  };
  return { app, api, adapters, upgrades, server, finish };
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
