import express, { type NextFunction, type Request, type Response } from 'express';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { OutpostError } from '../../core/errors.js';
import type { Logger } from '../log.js';
import { isLoopbackAddress, plainAddress } from '../net.js';
import { verifyToken as verifyConfigToken } from './passwords.js';
import { roleAtLeast, type Principal, type Role } from './roles.js';
import { SessionStore, SESSION_COOKIE, csrfMatches, readCookie, sessionCookie, type Session } from './sessions.js';
import { LoginThrottle } from './rate-limit.js';
import { passwordChecks } from './hash-gate.js';
import { UserStore, USERNAME } from './users.js';
import type { LocalAccessToken } from './local-access.js';
import { ProxyTrust } from '../http/forwarded.js';
import type { AuditSink } from '../audit/entry.js';
import { audited } from '../audit/record.js';
import { refused } from '../audit/audit-log.js';
import { sourceOf } from '../audit/actor.js';

/** The `auth` section of the configuration (see runtime/config/schema.ts). */
export interface AuthConfig {
  /**
   * Role given to requests from this host that present no credentials (opt-in; default
   * `none`): a proxy on this host makes every stranger local. Browsers never get it.
   */
  loopback: Role | 'none';
  admin: { username: string; password?: string; passwordHash?: string };
  session: { idleMinutes: number; maxHours: number; maxSessions: number };
  login: { maxFailures: number; maxFailuresPerAddress: number; maxFailuresPerUser?: number; windowSeconds: number };
  /** Path prefixes only admins may use (besides users and tokens): config, flow editor. */
  adminPaths: string[];
  /**
   * Path prefixes whose routes check their own credentials (the file-drop upload with its
   * per-adapter tokens): the gateway's login is not asked there. Admin paths never are.
   */
  delegatedPaths: string[];
}

export interface SecurityOptions {
  config: AuthConfig;
  dataDir: string;
  /** `http.tokens`: sha256 hashes of bearer tokens from the config file; they act as admin. */
  configTokens: readonly string[];
  /** `http.trustedProxies`: whose forwarding headers say who the client is. */
  proxies?: ProxyTrust;
  /** The token of `outpost api` on this host (local-access.json); acts as admin. */
  localAccess?: LocalAccessToken;
  log: Logger;
  now?: () => number;
  /** The audit trail: user and token changes, own password changes. */
  audit?: AuditSink;
  /** `broker.prefix`, told to the dashboard by `GET /api/auth/me` (it subscribes to live values under it); default `outpost`. */
  brokerPrefix?: string;
  /** The role `configTokens` act with (default admin; Outpost Central's read-only API tokens are viewers). */
  configTokenRole?: Role;
  /**
   * The session cookie's name (default `outpost_session`). Cookies are per host, not per port:
   * Outpost Central on the same host as a gateway uses its own name so the two logins coexist.
   */
  cookieName?: string;
  /** Record logins in the audit trail (`login`: ok, or refused for a wrong password); Outpost Central turns it on. */
  auditLogins?: boolean;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Paths anyone may request: health, the login API, the dashboard's static shell. */
function isPublic(method: string, path: string): boolean {
  if (path === '/healthz') return true;
  if (path === '/api/auth/login' || path === '/api/auth/logout') return method === 'POST';
  if (path === '/api/auth/me') return SAFE_METHODS.has(method);
  if (SAFE_METHODS.has(method) && (path === '/' || path === '/index.html' || path === '/favicon.ico' || path.startsWith('/ui/'))) return true;
  return false;
}

declare module 'node:http' {
  interface IncomingMessage {
    /** Set on websocket upgrades that passed the HTTP security check. */
    outpostPrincipal?: Principal;
  }
}

/** A request a browser made: browsers send Origin or Sec-Fetch-Site (Fetch Metadata); tools do not. */
function fromBrowser(req: IncomingMessage, cookieName: string): boolean {
  return req.headers.origin !== undefined || req.headers['sec-fetch-site'] !== undefined || readCookie(req.headers.cookie, cookieName) !== undefined;
}

/** Host header names this host: a DNS-rebinding page carries its own name instead. */
function hostIsLoopback(req: IncomingMessage): boolean {
  const host = (req.headers.host ?? '').replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return host === 'localhost' || isLoopbackAddress(host);
}

/**
 * Users, sessions, tokens and the HTTP checks around them: `authenticate` finds who
 * is asking, `authorize` decides by path and method, `routes` is the login and
 * user-management API. One instance per gateway.
 */
export class Security {
  readonly users: UserStore;
  readonly sessions: SessionStore;
  readonly throttle: LoginThrottle;
  readonly proxies: ProxyTrust;
  private warnedUntrustedProxy = false;
  private readonly cookieName: string;

  constructor(private readonly o: SecurityOptions) {
    this.proxies = o.proxies ?? new ProxyTrust([]);
    this.cookieName = o.cookieName ?? SESSION_COOKIE;
    this.users = new UserStore(join(o.dataDir, 'auth', 'users.json'), o.now);
    const c = o.config;
    this.sessions = new SessionStore({
      idleMs: c.session.idleMinutes * 60_000,
      maxAgeMs: c.session.maxHours * 3_600_000,
      maxSessions: c.session.maxSessions,
      now: o.now,
    });
    this.throttle = new LoginThrottle({
      maxFailures: c.login.maxFailures,
      maxFailuresPerAddress: c.login.maxFailuresPerAddress,
      maxFailuresPerUser: c.login.maxFailuresPerUser,
      windowMs: c.login.windowSeconds * 1000,
      now: o.now,
    });
  }

  /**
   * Loads the user file and creates the first admin when there is none. A generated
   * password is returned for the caller to show once on the terminal; it is never logged.
   */
  async init(): Promise<{ username: string; created: boolean; generatedPassword?: string; file: string }> {
    this.users.load();
    if (this.o.config.loopback !== 'none') {
      this.o.log.warn(
        { role: this.o.config.loopback },
        'auth.loopback gives this role to every request from this host without credentials: a reverse proxy or port forwarder here hands it to the whole network',
      );
    }
    const admin = this.o.config.admin;
    const result = await this.users.ensureInitialAdmin(admin);
    if (result.created) {
      this.o.log.info({ username: admin.username, file: this.users.path, generated: result.generatedPassword !== undefined }, 'created the first admin user');
    }
    return { username: admin.username, file: this.users.path, ...result };
  }

  /** The client as it made the request: address, scheme and host before our trusted proxies. */
  client(req: IncomingMessage): ReturnType<ProxyTrust['view']> {
    const view = this.proxies.view(req);
    if (view.untrustedForwarding && !this.warnedUntrustedProxy) {
      this.warnedUntrustedProxy = true;
      this.o.log.warn(
        { peer: req.socket.remoteAddress },
        'a request carries X-Forwarded-* headers from a peer not in http.trustedProxies: they are ignored, so every client behind that proxy shares its address (login throttles, logs)',
      );
    }
    return view;
  }

  /** When the browser says where the request comes from, it must be this very origin (as the client saw it). */
  sameOrigin(req: IncomingMessage): boolean {
    const origin = req.headers.origin;
    const site = req.headers['sec-fetch-site'];
    if (origin === undefined) return site === undefined || site === 'same-origin' || site === 'none';
    const client = this.client(req);
    return origin === `${client.proto}://${client.host}`;
  }

  /** Who is asking: bearer token, session cookie, or (opt-in) a tool on this host. */
  principalOf(req: IncomingMessage): Principal | undefined {
    const header = req.headers.authorization;
    if (header !== undefined) {
      const match = /^Bearer\s+(\S+)$/i.exec(header);
      if (!match) throw new OutpostError('NOT_AUTHENTICATED', 'Authorization must be "Bearer <token>"');
      const token = match[1]!;
      if (this.o.localAccess?.matches(token)) return { kind: 'token', name: 'local', role: 'admin' };
      const rec = this.users.verifyToken(token);
      if (rec) return { kind: 'token', name: rec.name, role: rec.role };
      if (verifyConfigToken(token, this.o.configTokens)) return { kind: 'token', name: 'config', role: this.o.configTokenRole ?? 'admin' };
      throw new OutpostError('NOT_AUTHENTICATED', 'the bearer token is not valid');
    }
    const session = this.sessions.get(readCookie(req.headers.cookie, this.cookieName));
    if (session) return { kind: 'session', name: session.username, role: session.role, sessionId: session.id, csrf: session.csrf };
    const loopbackRole = this.o.config.loopback;
    if (
      loopbackRole !== 'none' &&
      isLoopbackAddress(req.socket.remoteAddress) &&
      hostIsLoopback(req) &&
      !fromBrowser(req, this.cookieName) &&
      !this.forwarded(req)
    ) {
      return { kind: 'loopback', name: 'loopback', role: loopbackRole };
    }
    return undefined;
  }

  /** Came through a proxy: a trusted one, or one whose forwarding headers say the caller is elsewhere. */
  private forwarded(req: IncomingMessage): boolean {
    const client = this.client(req);
    return client.proxied || client.untrustedForwarding;
  }

  /** What a request needs: nothing, any login, or at least a role (`path` as `routingPath` gives it). */
  requirement(method: string, path: string): 'public' | 'delegated' | Role {
    if (isPublic(method, path)) return 'public';
    const under = (p: string) => path === p || path.startsWith(p.endsWith('/') ? p : p + '/');
    if (['/api/users', '/api/tokens', '/api/admin', '/api/audit', ...this.o.config.adminPaths].some(under)) return 'admin';
    if (!path.startsWith('/api/') && this.o.config.delegatedPaths.some(under)) return 'delegated';
    if (path === '/api/auth/password') return 'viewer';
    return SAFE_METHODS.has(method) ? 'viewer' : 'operator';
  }

  /** Express middleware: authentication, role check, CSRF check; sets res.locals.principal. */
  readonly guard = (req: Request, res: Response, next: NextFunction): void => {
    try {
      const needed = this.requirement(req.method, routingPath(req.path));
      // The route checks its own credentials; ours may not even be in the header.
      if (needed === 'delegated') return next();
      const principal = this.principalOf(req);
      res.locals.principal = principal;
      if (needed === 'public') return next();
      if (!principal) throw new OutpostError('NOT_AUTHENTICATED', 'log in, or send "Authorization: Bearer <token>"');
      if (!roleAtLeast(principal.role, needed)) {
        this.o.log.warn(
          { user: principal.name, kind: principal.kind, role: principal.role, method: req.method, path: req.path },
          'request refused: role too low',
        );
        throw new OutpostError('FORBIDDEN', `${req.method} ${req.path} needs the ${needed} role; "${principal.name}" is ${principal.role}`);
      }
      if (principal.kind === 'session' && !SAFE_METHODS.has(req.method)) this.checkCsrf(req, principal);
      next();
    } catch (err) {
      next(err);
    }
  };

  private checkCsrf(req: Request, principal: Principal): void {
    if (!this.sameOrigin(req)) throw new OutpostError('CSRF_FAILED', this.crossSiteReason(req, 'the request comes from another site'));
    // The Node-RED editor cannot send our token header; for it the same-origin check
    // (Origin / Sec-Fetch-Site, OWASP's verifying-origin defence) is the CSRF protection.
    if (req.path === '/flows' || req.path.startsWith('/flows/')) return;
    const session = this.sessions.get(principal.sessionId);
    const given = req.headers['x-csrf-token'];
    if (!session || !csrfMatches(session, typeof given === 'string' ? given : undefined)) {
      throw new OutpostError('CSRF_FAILED', 'send the X-CSRF-Token header given at login (GET /api/auth/me)');
    }
  }

  /**
   * Checks a websocket upgrade (MQTT over websocket for the dashboard). Browsers do not
   * apply the same-origin policy to websockets, so the Origin is checked here
   * (cross-site websocket hijacking); returns the principal or undefined to refuse.
   */
  upgradePrincipal(req: IncomingMessage): Principal | undefined {
    // Settles the client's address (trusted proxies applied) for the broker's throttles and logs.
    this.client(req);
    if (!this.sameOrigin(req)) return undefined;
    try {
      return this.principalOf(req);
    } catch (err) {
      if (err instanceof OutpostError) return undefined;
      throw err;
    }
  }

  /**
   * A password check of `username` for a request from `address`: throttled per address and
   * per (address, user), counting checks under way, and through the process's hash gate.
   * Refusals are LOGIN_THROTTLED with Retry-After. Returns the user, or undefined when wrong.
   */
  private async checkPassword(res: Response, address: string, username: string, password: string): Promise<Awaited<ReturnType<UserStore['verifyLogin']>>> {
    const attempt = this.throttle.begin(address, username);
    if (typeof attempt === 'number') {
      res.setHeader('Retry-After', String(attempt));
      throw new OutpostError('LOGIN_THROTTLED', `too many failed logins: try again in ${attempt} s`, { details: { retryAfterSeconds: attempt } });
    }
    let user: Awaited<ReturnType<UserStore['verifyLogin']>>;
    try {
      user = await passwordChecks.run(() => this.users.verifyLogin(username, password));
    } catch (err) {
      attempt.abandoned();
      if (err instanceof OutpostError && err.code === 'LOGIN_THROTTLED') res.setHeader('Retry-After', '1');
      throw err;
    }
    if (user) attempt.succeeded();
    else attempt.failed();
    return user;
  }

  private startSession(req: Request, res: Response, username: string, role: Role): Session {
    const session = this.sessions.create(username, role);
    res.setHeader('Set-Cookie', sessionCookie(session.id, { secure: this.client(req).proto === 'https', name: this.cookieName }));
    return session;
  }

  /**
   * A same-origin check failed: when it is a TLS-terminating proxy we were not told to
   * trust (the browser's origin is https, we see http on the same host), say what to set.
   */
  private crossSiteReason(req: IncomingMessage, plain: string): string {
    const origin = req.headers.origin;
    const client = this.client(req);
    if (origin !== undefined && client.untrustedForwarding && origin.startsWith('https://')) {
      return `${plain}: the browser is at ${origin} and this request came through a proxy not listed in http.trustedProxies (its X-Forwarded-Proto/-Host are ignored)`;
    }
    return plain;
  }

  /** `/api/auth/*` (login, logout, me, own password) and the admin's `/api/users`, `/api/tokens`. */
  routes(): express.Router {
    const r = express.Router();
    const body = (req: Request): Record<string, unknown> => {
      if (!req.body || typeof req.body !== 'object' || Array.isArray(req.body))
        throw new OutpostError('BAD_REQUEST', 'expected a JSON object body (Content-Type: application/json)');
      return req.body as Record<string, unknown>;
    };
    const principal = (res: Response): Principal => {
      const p = res.locals.principal as Principal | undefined;
      if (!p) throw new OutpostError('NOT_AUTHENTICATED', 'log in first');
      return p;
    };

    r.post('/api/auth/login', async (req, res) => {
      if (!this.sameOrigin(req)) throw new OutpostError('CSRF_FAILED', this.crossSiteReason(req, 'the login comes from another site'));
      const b = body(req);
      const username = typeof b.username === 'string' ? b.username.trim().toLowerCase() : '';
      const password = typeof b.password === 'string' ? b.password : '';
      if (!USERNAME.test(username) || password.length === 0 || password.length > 256)
        throw new OutpostError('BAD_REQUEST', '"username" and "password" are required');
      const address = this.client(req).address;
      const user = await this.checkPassword(res, address, username, password);
      if (!user) {
        this.o.log.warn({ username, address }, 'login failed');
        const refusal = new OutpostError('NOT_AUTHENTICATED', 'wrong username or password');
        // Only refusals after a password check: the throttle bounds them per address and user, so
        // a guesser cannot rotate everyone else's entries out of the bounded trail.
        if (this.o.auditLogins)
          this.o.audit?.record({ action: 'login', actor: { kind: 'user', name: username }, address: plainAddress(address), ...refused(refusal) });
        throw refusal;
      }
      const old = this.sessions.get(readCookie(req.headers.cookie, this.cookieName));
      if (old) this.sessions.destroy(old.id); // a fresh id on login (session fixation)
      const session = this.startSession(req, res, user.username, user.role);
      this.o.log.info({ username, address }, 'login');
      if (this.o.auditLogins)
        this.o.audit?.record({ action: 'login', actor: { kind: 'user', name: user.username }, address: plainAddress(address), outcome: 'ok' });
      res.json({ username: user.username, role: user.role, csrf: session.csrf });
    });

    r.post('/api/auth/logout', (req, res) => {
      const session = this.sessions.get(readCookie(req.headers.cookie, this.cookieName));
      if (session && csrfMatches(session, req.headers['x-csrf-token'] as string | undefined)) this.sessions.destroy(session.id);
      res.setHeader('Set-Cookie', sessionCookie('', { secure: this.client(req).proto === 'https', maxAgeSeconds: 0, name: this.cookieName }));
      res.json({ ok: true });
    });

    r.get('/api/auth/me', (_req, res) => {
      const p = principal(res);
      res.json({ username: p.name, role: p.role, kind: p.kind, ...(p.csrf ? { csrf: p.csrf } : {}), broker: { prefix: this.o.brokerPrefix ?? 'outpost' } });
    });

    r.post('/api/auth/password', async (req, res) => {
      const p = principal(res);
      const address = this.client(req).address;
      // Wrong current passwords are recorded too (refused): guessing leaves a trace.
      const session = await audited(this.o.audit, { action: 'password.change', ...sourceOf(p, address), target: p.name }, async () => {
        if (p.kind !== 'session') throw new OutpostError('FORBIDDEN', 'only a logged-in user changes their own password');
        const b = body(req);
        // Throttled as logins are: a stolen session must not make the password guessable.
        const ok = await this.checkPassword(res, address, p.name, typeof b.current === 'string' ? b.current : '');
        if (!ok) {
          this.o.log.warn({ username: p.name, address }, 'password change: wrong current password');
          throw new OutpostError('NOT_AUTHENTICATED', 'the current password is wrong');
        }
        await this.users.updateUser(p.name, { password: b.password });
        this.sessions.destroyUser(p.name);
        return this.startSession(req, res, p.name, p.role);
      });
      res.json({ ok: true, csrf: session.csrf });
    });

    r.get('/api/users', (_req, res) => {
      res.json({ items: this.users.listUsers() });
    });
    r.post('/api/users', async (req, res) => {
      const b = body(req);
      const user = await audited(
        this.o.audit,
        {
          action: 'user.add',
          ...sourceOf(principal(res), this.client(req).address),
          target: typeof b.username === 'string' ? b.username : undefined,
          details: { role: b.role },
        },
        () => this.users.addUser({ username: b.username, role: b.role, password: b.password }),
      );
      this.o.log.info({ username: user.username, role: user.role, by: principal(res).name }, 'user added');
      res.status(201).json(user);
    });
    r.patch('/api/users/:username', async (req, res) => {
      const b = body(req);
      const change = {
        action: 'user.change',
        ...sourceOf(principal(res), this.client(req).address),
        target: req.params.username,
        details: { role: b.role, passwordChanged: b.password !== undefined },
      };
      const user = await audited(this.o.audit, change, async () => {
        const changed = await this.users.updateUser(req.params.username!, { role: b.role, password: b.password });
        // A changed role or password applies at once: the user's sessions end.
        this.sessions.destroyUser(changed.username);
        return changed;
      });
      this.o.log.info({ username: user.username, role: user.role, passwordChanged: b.password !== undefined, by: principal(res).name }, 'user changed');
      res.json(user);
    });
    r.delete('/api/users/:username', async (req, res) => {
      const p = principal(res);
      await audited(this.o.audit, { action: 'user.remove', ...sourceOf(p, this.client(req).address), target: req.params.username }, async () => {
        if (p.kind === 'session' && p.name === req.params.username) throw new OutpostError('AUTH_CONFLICT', 'you cannot remove yourself');
        await this.users.removeUser(req.params.username!);
        this.sessions.destroyUser(req.params.username!);
      });
      this.o.log.info({ username: req.params.username, by: p.name }, 'user removed');
      res.json({ ok: true });
    });

    r.get('/api/tokens', (_req, res) => {
      res.json({ items: this.users.listTokens() });
    });
    r.post('/api/tokens', async (req, res) => {
      const b = body(req);
      // The token's value is in `created` and goes to the client only; the trail gets its id.
      const created = await audited(
        this.o.audit,
        {
          action: 'token.create',
          ...sourceOf(principal(res), this.client(req).address),
          target: typeof b.name === 'string' ? b.name : undefined,
          details: { role: b.role },
        },
        () => this.users.createToken({ name: b.name, role: b.role, createdBy: principal(res).name }),
        (t) => ({ id: t.id }),
      );
      this.o.log.info({ tokenId: created.id, name: created.name, role: created.role, by: principal(res).name }, 'API token created');
      res.status(201).json(created);
    });
    r.delete('/api/tokens/:id', async (req, res) => {
      const name = this.users.listTokens().find((t) => t.id === req.params.id)?.name;
      await audited(
        this.o.audit,
        {
          action: 'token.revoke',
          ...sourceOf(principal(res), this.client(req).address),
          target: req.params.id,
          details: name === undefined ? undefined : { name },
        },
        () => this.users.revokeToken(req.params.id!),
      );
      this.o.log.info({ tokenId: req.params.id, by: principal(res).name }, 'API token revoked');
      res.json({ ok: true });
    });
    return r;
  }
}

/**
 * The path as the router matches it: Express routes are case-insensitive and match
 * percent-encoded letters too, so `/API/Users` and `/api/%75sers` reach the `/api/users`
 * handlers. The role check must see the same path, or it is bypassed by spelling.
 */
function routingPath(path: string): string {
  let decoded = path;
  try {
    decoded = decodeURIComponent(path);
  } catch (err) {
    // A malformed escape (`%zz`) matches no route as decoded text; check it as sent.
    if (!(err instanceof URIError)) throw err;
  }
  return decoded.toLowerCase();
}
