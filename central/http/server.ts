import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OutpostError, isOutpostError, toOutpostError } from '../../core/errors.js';
import '../../storage/errors.js';
import '../errors.js';
import { tokenMatches } from '../gateways.js';
import { bearerOf } from '../ingest/gateway-auth.js';
import type { Logger } from '../log.js';
import { rateLimitedWarn } from '../log.js';

/** Who may call a route: API token holders, gateways (the ingest checks their credentials itself), or anyone. */
export type RouteAccess = 'api' | 'ingest' | 'public';

export interface RouteSpec {
  method: 'get' | 'post';
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

  constructor(private readonly o: CentralHttpOptions) {
    this.app.disable('x-powered-by');
    this.app.set('etag', false);
    this.app.use((_req, res, next) => {
      res.setHeader('x-content-type-options', 'nosniff');
      res.setHeader('cache-control', 'no-store');
      next();
    });
    this.warn = rateLimitedWarn(o.log);
  }

  /** Adds a route; `api` routes need a token of `http.tokens`. */
  route(method: RouteSpec['method'], path: string, access: RouteAccess, ...handlers: RequestHandler[]): void {
    this.routes.push({ method, path, access });
    const chain = access === 'api' ? [this.apiAuth(), ...handlers] : handlers;
    this.app[method](path, ...chain);
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
