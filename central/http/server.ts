import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OutpostError, isOutpostError, toOutpostError } from '../../core/errors.js';
import '../../storage/errors.js';
import '../errors.js';
import { securityHeaders } from '../../runtime/auth/headers.js';
import { tokenMatches } from '../gateways.js';
import { bearerOf } from '../ingest/gateway-auth.js';
import type { Logger } from '../log.js';
import { rateLimitedWarn } from '../log.js';

/**
 * Who may call a route: API token holders and, with the web UI, logged-in users (`api`, the role
 * by method and path: central/web/security.ts); anyone, the guard only finding who asks (`login`:
 * the login routes); gateways (`ingest`: the ingest checks their credentials itself); anyone.
 */
export type RouteAccess = 'api' | 'login' | 'ingest' | 'public';

export interface RouteSpec {
  method: 'get' | 'post' | 'patch' | 'delete';
  /** Express path (`/api/gateways/:gateway`). */
  path: string;
  access: RouteAccess;
}

export interface CentralHttpOptions {
  host: string;
  port: number;
  /** sha256 hashes of API tokens (`http.tokens`). */
  tokens: readonly string[];
  log: Logger;
}

/**
 * Central's HTTP server: one express app, every route added through `route()` so the list of
 * routes is known (the OpenAPI test compares it with openapi.json both ways). Errors are the
 * gateway's JSON shape, `{"error": {"code", "message", "retryable"}}`, with the catalogue's
 * status; retryable 503s carry `Retry-After`.
 */
export class CentralHttp {
  readonly app = express();
  readonly routes: RouteSpec[] = [];
  private server: Server | undefined;
  private readonly warn: ReturnType<typeof rateLimitedWarn>;
  /** Who may call `api` and `login` routes when the web UI's logins are on (authenticateWith). */
  private guard: RequestHandler | undefined;

  constructor(private readonly o: CentralHttpOptions) {
    this.app.disable('x-powered-by');
    this.app.set('etag', false);
    // The gateway's headers (CSP `default-src 'self'`, no framing, no referrer): the web UI is
    // served from here; TLS is a proxy's in front (README), so no HSTS from us.
    this.app.use(securityHeaders({ tls: false }));
    this.app.use((_req, res, next) => {
      res.setHeader('x-content-type-options', 'nosniff');
      res.setHeader('cache-control', 'no-store');
      next();
    });
    this.warn = rateLimitedWarn(o.log);
  }

  /** Adds a route; `api` routes need a token of `http.tokens` (or what the guard asks, once given). */
  route(method: RouteSpec['method'], path: string, access: RouteAccess, ...handlers: RequestHandler[]): void {
    if (access === 'login' && !this.guard) throw new Error(`${path}: a login route needs the guard (authenticateWith) first`);
    this.routes.push({ method, path, access });
    const chain = access === 'api' || access === 'login' ? [this.guard ?? this.apiAuth(), ...handlers] : handlers;
    this.app[method](path, ...chain);
  }

  /**
   * Puts `guard` in front of every `api` and `login` route instead of the token check: the web
   * UI's logins (runtime/auth Security.guard: sessions, CSRF, roles, and `http.tokens` as
   * viewers). Before any such route is added, so none is left with the other check.
   */
  authenticateWith(guard: RequestHandler): void {
    if (this.routes.some((r) => r.access === 'api' || r.access === 'login')) throw new Error('authenticateWith must come before the first api route');
    this.guard = guard;
  }

  private apiAuth(): RequestHandler {
    const tokens = this.o.tokens;
    return (req, _res, next) => {
      const token = bearerOf(req.headers);
      if (token && tokenMatches(token, tokens)) return next();
      next(
        new OutpostError(
          'NOT_AUTHENTICATED',
          tokens.length === 0
            ? 'this central has no API tokens yet: add the hash of one to http.tokens (outpost hash-token)'
            : 'Authorization: Bearer <API token> is required',
        ),
      );
    };
  }

  async listen(): Promise<string> {
    this.app.use((req, _res, next) => next(new OutpostError('NOT_FOUND', `no route ${req.method} ${req.path}`)));
    this.app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => this.fail(err, req, res));
    const server = createServer(this.app);
    // Gateways keep connections open between batches (keep-alive agents).
    server.keepAliveTimeout = 65_000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.o.port, this.o.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return `http://${host}:${address.port}`;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    });
  }

  private fail(err: unknown, req: Request, res: Response): void {
    const e = bodyError(err) ?? toOutpostError(err);
    if (e.code === 'INTERNAL') this.o.log.error({ err, path: req.path }, 'request failed');
    else if (e.status >= 500) this.warn(`http:${req.path}:${e.code}`, { path: req.path, code: e.code, reason: e.message }, 'request not served');
    if (res.headersSent) {
      res.end();
      return;
    }
    if (e.retryable && (e.status === 503 || e.status === 429)) res.setHeader('retry-after', '1');
    res.status(e.status).json({ error: e.toJSON() });
  }
}

/** express's body parser errors (too large, bad JSON or form) as catalogue errors. */
function bodyError(err: unknown): OutpostError | undefined {
  if (isOutpostError(err)) return undefined;
  const type = (err as { type?: string } | null)?.type;
  if (type === 'entity.too.large') return new OutpostError('BODY_TOO_LARGE', 'the request body is larger than http.maxBodyBytes');
  if (type === 'entity.parse.failed') return new OutpostError('BAD_REQUEST', `the request body cannot be parsed: ${(err as Error).message}`);
  if (type === 'encoding.unsupported' || type === 'charset.unsupported') return new OutpostError('BAD_REQUEST', (err as Error).message);
  return undefined;
}
