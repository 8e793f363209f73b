// NodeRedService: starts and stops the embedded Node-RED and is its front door (login checks on
// /flows, websocket upgrades, the change audit). What Node-RED is started with lives in
// node-red-settings.ts and flow-file.ts, the HTTP plumbing in http-bridge.ts.
import { createRequire } from 'node:module';
import { EventEmitter } from 'node:events';
import { resolve } from 'node:path';
import { mkdir } from 'node:fs/promises';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import express, { type NextFunction, type Request, type Response } from 'express';
import { OutpostError, toOutpostError } from '../core/errors.js';
import type { Logger } from '../runtime/log.js';
import type { Bus } from '../runtime/bus.js';
import type { Ingest } from '../runtime/ingest.js';
import type { DatapointRegistry } from '../runtime/datapoints/registry.js';
import type { Store } from '../storage/store.js';
import type { Topics } from '../runtime/topics.js';
import type { AdapterStatus } from '../runtime/adapter-host.js';
import type { FlowAlarms } from '../runtime/alarms/index.js';
import type { UpgradeHandler } from '../runtime/adapter.js';
import type { Clock } from '../core/clock.js';
import type { FlowsConfig } from './config.js';
import { CrashGuard } from './crash-guard.js';
import { EditorTokens, TOKEN_HEADER, assertFlowsAdmin, type Authorize, type AuthorizeUpgrade, type FlowChangeEvent, type FlowsUser } from './editor-auth.js';
import { ADMIN_ROOT, NODES_DIR, NODE_ROOT, nodeRedSettings, readCredentialSecret } from './node-red-settings.js';
import { prepareFlowFile } from './flow-file.js';
import { delegate, refuse, refuseUpgrade } from './http-bridge.js';

export { NODES_DIR, type OutpostNodeContext } from './node-red-settings.js';
export { DEFAULT_FLOWS_FILE, readFlowFile } from './flow-file.js';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** An upgrade Node-RED has not answered by then is for a path no websocket node serves. */
const UNANSWERED_UPGRADE_MS = 5_000;

export interface NodeRedDeps {
  /** Express app or router on the gateway's HTTP server; the service mounts /flows and /flows-api on it. */
  app: { use: (handler: express.RequestHandler) => unknown };
  server: Server;
  /**
   * The gateway's upgrade dispatcher (path prefix → handler). When given, the editor's
   * websocket (/flows/comms) and websocket nodes (/flows-api/...) register there; otherwise
   * the service listens for `upgrade` on `server` itself.
   */
  upgrades?: Map<string, UpgradeHandler>;
  bus: Bus;
  ingest: Ingest;
  registry: DatapointRegistry;
  store: Store;
  topics: Topics;
  hostStatuses: () => AdapterStatus[];
  linkStatuses?: () => unknown[];
  /** Raise and clear alarms of the flows' own (the `outpost alarm` node; runtime/alarms). */
  alarms?: FlowAlarms;
  log: Logger;
  clock?: Clock;
  config: FlowsConfig;
  dataDir: string;
  /** Who is behind an HTTP request to /flows (the gateway's guard has checked role and CSRF before). */
  authorize: Authorize;
  /**
   * Who is behind a websocket upgrade, Origin checked (the gateway's `upgradePrincipal`):
   * /flows/comms takes admins only, websocket nodes under /flows-api any user; without
   * one the upgrade is refused before Node-RED sees the socket. Not given: every
   * websocket upgrade is refused (no check, no trust).
   */
  authorizeUpgrade?: AuthorizeUpgrade;
  /** Told of every change request an admin made to the admin API (deploys first of all), once answered: the audit log. */
  onDeploy?: (event: FlowChangeEvent) => void;
}

/** The parts of the `node-red` module this service uses (it ships no types). */
interface NodeRedModule {
  init(server: unknown, settings: Record<string, unknown>): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly httpAdmin: express.RequestHandler;
  readonly httpNode: express.RequestHandler;
  readonly nodes: { getType(type: string): unknown };
  readonly version: string;
}

/** Node-RED is a module-level singleton: one embedded instance per process. */
let running: NodeRedService | undefined;

/**
 * Node-RED embedded in the gateway process (issue 9): editor at /flows behind Outpost's
 * login, HTTP nodes at /flows-api, user dir and flows in `<dataDir>/node-red`, Outpost's
 * nodes talking to the bus in-process. Start after the bus, stop before it.
 */
export class NodeRedService {
  readonly userDir: string;
  private red: NodeRedModule | undefined;
  private readonly tokens = new EditorTokens();
  private readonly upgradeProxy = new EventEmitter();
  private readonly guard: CrashGuard;
  private readonly log: Logger;
  private mounted = false;
  private serverUpgradeListener: ((req: IncomingMessage, socket: Duplex, head: Buffer) => void) | undefined;

  constructor(private readonly deps: NodeRedDeps) {
    this.log = deps.log;
    this.userDir = resolve(deps.dataDir, 'node-red');
    this.guard = new CrashGuard(this.log, [NODES_DIR, this.userDir]);
    this.upgradeProxy.setMaxListeners(0);
  }

  get running(): boolean {
    return this.red !== undefined;
  }

  /** Errors that escaped flows and were contained since start. */
  get containedErrors(): number {
    return this.guard.containedCount;
  }

  async start(): Promise<void> {
    const { config } = this.deps;
    if (!config.enabled) {
      this.log.info('Node-RED disabled (flows.enabled is false)');
      return;
    }
    if (this.red) return;
    if (running) throw new OutpostError('FLOWS_START_FAILED', 'Node-RED is already running in this process (it is a process-wide singleton)');
    const credentialSecret = await readCredentialSecret(config);
    await mkdir(this.userDir, { recursive: true });
    await prepareFlowFile(config, this.userDir, this.log);

    const require = createRequire(import.meta.url);
    const red = require('node-red') as NodeRedModule;
    this.guard.install();
    running = this;
    try {
      red.init(this.upgradeProxy, nodeRedSettings(this.deps, this.userDir, credentialSecret, this.tokens));
      await red.start();
      for (const type of ['outpost in', 'outpost out', 'outpost history', 'outpost status', 'outpost alarm']) {
        if (!red.nodes.getType(type))
          throw new OutpostError('FLOWS_START_FAILED', `node type "${type}" did not load from ${NODES_DIR} (is the .cjs file missing from the build?)`);
      }
    } catch (err) {
      await red.stop().catch((stopErr: unknown) => this.log.debug({ err: stopErr }, 'Node-RED stop after failed start'));
      this.guard.uninstall();
      running = undefined;
      throw err instanceof OutpostError ? err : new OutpostError('FLOWS_START_FAILED', (err as Error)?.message ?? String(err), { cause: err });
    }
    this.red = red;
    this.mount();
    this.log.info({ version: red.version, editor: config.editor ? ADMIN_ROOT : false, userDir: this.userDir }, 'Node-RED running');
  }

  /** Stops the flows (their nodes close bus subscriptions); the bus must still be up. */
  async stop(): Promise<void> {
    const red = this.red;
    if (!red) return;
    this.red = undefined;
    try {
      await red.stop();
    } finally {
      if (this.serverUpgradeListener) this.deps.server.off('upgrade', this.serverUpgradeListener);
      this.serverUpgradeListener = undefined;
      this.deps.upgrades?.delete(ADMIN_ROOT);
      this.deps.upgrades?.delete(NODE_ROOT);
      this.upgradeProxy.removeAllListeners();
      this.guard.uninstall();
      running = undefined;
      this.log.info('Node-RED stopped');
    }
  }

  /** Mounts /flows (behind authorize) and /flows-api on the gateway app, and the websocket upgrades. */
  private mount(): void {
    if (!this.mounted) {
      this.mounted = true;
      const router = express.Router();
      router.use(ADMIN_ROOT, (req, res, next) => this.admin(req, res, next));
      router.use(NODE_ROOT, (req, res, next) => this.node(req, res, next));
      this.deps.app.use(router);
    }
    const admin: UpgradeHandler = (req, socket, head) => void this.upgradeAdmin(req, socket, head);
    const node: UpgradeHandler = (req, socket, head) => void this.upgradeNode(req, socket, head);
    if (this.deps.upgrades) {
      this.deps.upgrades.set(ADMIN_ROOT, admin);
      this.deps.upgrades.set(NODE_ROOT, node);
    } else {
      this.serverUpgradeListener = (req, socket, head) => {
        const path = (req.url ?? '/').split('?')[0]!;
        if (path.startsWith(`${ADMIN_ROOT}/`)) admin(req, socket, head);
        else if (path.startsWith(`${NODE_ROOT}/`)) node(req, socket, head);
      };
      this.deps.server.on('upgrade', this.serverUpgradeListener);
    }
  }

  private async admin(req: Request, res: Response, next: NextFunction): Promise<void> {
    const red = this.red;
    if (!red) return next();
    delete req.headers[TOKEN_HEADER];
    let user: FlowsUser | null;
    try {
      user = await this.deps.authorize(req);
    } catch (err) {
      this.log.warn({ err: toOutpostError(err).message, path: req.originalUrl }, 'flows login check failed');
      user = null;
    }
    if (!user) return refuse(res, new OutpostError('NOT_AUTHENTICATED', 'the flow editor needs a login (the same as the dashboard)'));
    try {
      assertFlowsAdmin(user);
    } catch (err) {
      this.log.warn({ user: user.username, role: user.role, method: req.method, path: req.originalUrl }, 'flow editor refused: not an admin');
      return refuse(res, toOutpostError(err));
    }
    // Relative asset paths in the editor page need the trailing slash.
    if (req.method === 'GET' && req.originalUrl.split('?')[0] === ADMIN_ROOT) return res.redirect(301, `${ADMIN_ROOT}/`);
    const token = this.tokens.mint(user);
    req.headers[TOKEN_HEADER] = token;
    res.on('close', () => this.tokens.revoke(token));
    if (!SAFE_METHODS.has(req.method)) this.reportChange(req, res, user);
    delegate(red.httpAdmin, req, res, next);
  }

  /**
   * Tells `onDeploy` about an admin's change request once it is answered. On 'close', not
   * 'finish': a client that hangs up mid-deploy may still have changed the flows, and the
   * audit log must show the attempt (ok: false) rather than nothing.
   */
  private reportChange(req: Request, res: Response, user: FlowsUser): void {
    const onDeploy = this.deps.onDeploy;
    if (!onDeploy) return;
    const method = req.method;
    const path = req.originalUrl.split('?')[0]!;
    res.once('close', () => {
      const event: FlowChangeEvent = {
        user: user.username,
        role: user.role,
        ok: res.writableFinished && res.statusCode < 400,
        status: res.statusCode,
        method,
        path,
      };
      try {
        onDeploy(event);
      } catch (err) {
        // The change is done either way; a failing hook must not take the request path down with it.
        this.log.error({ err: toOutpostError(err).message, ...event }, 'flows: the change audit hook failed');
      }
    });
  }

  private node(req: Request, res: Response, next: NextFunction): void {
    const red = this.red;
    if (!red) return next();
    delete req.headers[TOKEN_HEADER];
    delegate(red.httpNode, req, res, next);
  }

  /** /flows/comms, the editor's websocket: admins only, as the editor itself. */
  private async upgradeAdmin(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const user = await this.upgradeUser(req, socket, 'editor');
    if (!user) return;
    try {
      assertFlowsAdmin(user);
    } catch (err) {
      this.log.warn({ user: user.username, role: user.role, path: req.url }, 'flow editor websocket refused: not an admin');
      return refuseUpgrade(socket, toOutpostError(err));
    }
    // The token is checked once, while Node-RED accepts the upgrade; it expires on its own.
    req.headers[TOKEN_HEADER] = this.tokens.mint(user);
    this.handOver(req, socket, head);
  }

  /**
   * Gives an accepted upgrade to Node-RED. Its listeners ignore paths no node serves and
   * leave the socket open for ever: one that Node-RED has not answered within a few seconds
   * gets a 404 and is closed, so logged-in clients cannot pile up idle sockets.
   */
  private handOver(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.upgradeProxy.emit('upgrade', req, socket, head);
    const timer = setTimeout(() => {
      if ((socket as Duplex & { bytesWritten?: number }).bytesWritten === 0 && !socket.destroyed) {
        refuseUpgrade(socket, new OutpostError('NOT_FOUND', `no websocket is served at ${(req.url ?? '').split('?')[0]}`));
      }
    }, UNANSWERED_UPGRADE_MS);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  }

  /**
   * Websocket nodes under /flows-api: any logged-in user or API token, from this origin.
   * A device feeding a flow uses an API token (`Authorization: Bearer`); a page of the site
   * uses the session cookie. Never anonymous: a flow may write datapoints and setpoints.
   */
  private async upgradeNode(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const user = await this.upgradeUser(req, socket, 'websocket node');
    if (user) this.handOver(req, socket, head);
  }

  /**
   * The user behind an upgrade, or null once the upgrade has been refused (401) on the
   * socket. Removes any hand-over token the client sent itself: only `upgradeAdmin` sets one.
   */
  private async upgradeUser(req: IncomingMessage, socket: Duplex, what: string): Promise<FlowsUser | null> {
    delete req.headers[TOKEN_HEADER];
    // Node's HTTP server takes its error listener off an upgraded socket. A client resetting
    // the connection while we check, while we refuse, or while Node-RED checks its token
    // (asynchronously, for comms) must not be an unhandled 'error' that ends the process;
    // ws adds its own listener once it owns the socket, so this one only logs.
    socket.on('error', (err) => this.log.debug({ err: err.message, path: req.url }, `flows ${what} websocket: connection error`));
    let user: FlowsUser | null = null;
    try {
      user = this.red && this.deps.authorizeUpgrade ? await this.deps.authorizeUpgrade(req) : null;
    } catch (err) {
      this.log.warn({ err: toOutpostError(err).message, path: req.url }, `flows ${what} websocket: login check failed`);
    }
    if (!user) {
      this.log.info(
        { path: req.url, origin: req.headers.origin, address: req.socket.remoteAddress },
        `flows ${what} websocket refused: no login, or a foreign Origin`,
      );
      refuseUpgrade(socket, new OutpostError('NOT_AUTHENTICATED', `the ${what} websocket needs a login or API token, from this site`));
    }
    return user;
  }
}
