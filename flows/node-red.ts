import { createRequire } from 'node:module';
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';
import { access, copyFile, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
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
import type { UpgradeHandler } from '../runtime/adapter.js';
import { systemClock, type Clock } from '../core/clock.js';
import type { FlowsConfig } from './config.js';
import { CrashGuard } from './crash-guard.js';
import { EditorTokens, TOKEN_HEADER, assertFlowsAdmin, type Authorize, type AuthorizeUpgrade, type FlowChangeEvent, type FlowsUser } from './editor-auth.js';

const here = dirname(fileURLToPath(import.meta.url));
/** Outpost's Node-RED nodes (CommonJS, loaded by Node-RED's own loader). */
export const NODES_DIR = join(here, 'nodes');
export const DEFAULT_FLOWS_FILE = join(here, 'default-flows.json');

/** Where the editor and the admin API live, and where HTTP-in/websocket nodes are served. */
export const ADMIN_ROOT = '/flows';
export const NODE_ROOT = '/flows-api';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** An upgrade Node-RED has not answered by then is for a path no websocket node serves. */
const UNANSWERED_UPGRADE_MS = 5_000;

/** What Outpost's nodes find in `RED.settings.outpost` (see flows/nodes/lib/context.cjs). */
export interface OutpostNodeContext {
  bus: Bus;
  ingest: Ingest;
  registry: DatapointRegistry;
  store: Store;
  topics: Topics;
  clock: Clock;
  log: Logger;
  hostStatuses: () => AdapterStatus[];
  /** Upstream link states, once runtime/sync provides them. */
  linkStatuses?: () => unknown[];
}

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

/** Node-RED numeric log levels (@node-red/util log.js) → pino methods. */
const LEVELS: Record<number, 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace'> = {
  10: 'fatal',
  20: 'error',
  30: 'warn',
  40: 'info',
  50: 'debug',
  60: 'trace',
  98: 'info', // audit
  99: 'debug', // metric
};

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
    const credentialSecret = await this.credentialSecret();
    await mkdir(this.userDir, { recursive: true });
    await this.prepareFlowFile();

    const require = createRequire(import.meta.url);
    const red = require('node-red') as NodeRedModule;
    this.guard.install();
    running = this;
    try {
      red.init(this.upgradeProxy, this.settings(credentialSecret));
      await red.start();
      for (const type of ['outpost in', 'outpost out', 'outpost history', 'outpost status']) {
        if (!red.nodes.getType(type)) throw new OutpostError('FLOWS_START_FAILED', `node type "${type}" did not load from ${NODES_DIR} (is the .cjs file missing from the build?)`);
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

  /** Never Node-RED's default: without a secret it writes its own key beside the credentials it protects. */
  private async credentialSecret(): Promise<string> {
    const { config } = this.deps;
    let secret = config.credentialSecret;
    if (secret === undefined && config.credentialSecretFile) {
      try {
        secret = (await readFile(config.credentialSecretFile, 'utf8')).split(/\r?\n/)[0]?.trim();
      } catch (err) {
        throw new OutpostError('CONFIG_INVALID', `flows.credentialSecretFile: cannot read ${config.credentialSecretFile}: ${(err as Error).message}`);
      }
    }
    if (!secret) {
      throw new OutpostError(
        'CONFIG_INVALID',
        'flows.credentialSecret (or flows.credentialSecretFile, or OUTPOST_FLOWS_CREDENTIALSECRET) is required when flows are enabled: ' +
          'without it Node-RED encrypts flow credentials with a key it generates and stores next to them, which protects nothing',
      );
    }
    if (secret.length < 16) throw new OutpostError('CONFIG_INVALID', 'flows credential secret: expected at least 16 characters (e.g. `openssl rand -hex 32`)');
    return secret;
  }

  /** Fleet roll-out: a configured flow file replaces the stored flows; the demo seeds its flows once. */
  private async prepareFlowFile(): Promise<void> {
    const { config } = this.deps;
    const target = join(this.userDir, 'flows.json');
    if (config.flowFile) {
      const flows = await readFlowFile(config.flowFile);
      const tmp = `${target}.tmp`;
      await writeFile(tmp, JSON.stringify(flows, null, 2));
      await rename(tmp, target);
      this.log.info({ file: config.flowFile, nodes: flows.length }, 'deploying flows from file');
      return;
    }
    if (config.defaultFlows && !(await exists(target))) {
      await readFlowFile(DEFAULT_FLOWS_FILE);
      await copyFile(DEFAULT_FLOWS_FILE, target);
      this.log.info({ file: DEFAULT_FLOWS_FILE }, 'seeded the default demo flows');
    }
  }

  private settings(credentialSecret: string): Record<string, unknown> {
    const { config } = this.deps;
    const context: OutpostNodeContext = {
      bus: this.deps.bus,
      ingest: this.deps.ingest,
      registry: this.deps.registry,
      store: this.deps.store,
      topics: this.deps.topics,
      clock: this.deps.clock ?? systemClock,
      log: this.log.child({ component: 'flows' }),
      hostStatuses: this.deps.hostStatuses,
      linkStatuses: this.deps.linkStatuses,
    };
    const nodeRedLog = this.log.child({ component: 'node-red' });
    return {
      userDir: this.userDir,
      flowFile: 'flows.json',
      flowFilePretty: true,
      credentialSecret,
      httpAdminRoot: ADMIN_ROOT,
      httpNodeRoot: NODE_ROOT,
      disableEditor: !config.editor,
      nodesDir: [NODES_DIR],
      nodesExcludes: config.excludeNodes.map((n) => (n.endsWith('.js') ? n : `${n}.js`)),
      // Sites are often offline and always memory-bound: no npm at run time, no calls home.
      functionExternalModules: false,
      externalModules: { autoInstall: false, palette: { allowInstall: false, allowUpload: false }, modules: { allowInstall: false } },
      telemetry: { enabled: false },
      diagnostics: { enabled: false },
      runtimeState: { enabled: false },
      editorTheme: {
        page: { title: 'Outpost flows' },
        header: { title: 'Outpost flows' },
        projects: { enabled: false },
        tours: false,
        multiplayer: { enabled: false },
      },
      // Node-RED's own login is off: the front door (authorize) has already decided, and
      // passes the user in TOKEN_HEADER; `tokens` resolves it (Node-RED "custom token" auth).
      adminAuth: {
        type: 'credentials',
        users: async () => null,
        authenticate: async () => null,
        tokens: async (token: string) => this.tokens.lookup(token),
        tokenHeader: TOKEN_HEADER,
      },
      logging: {
        outpost: {
          level: config.logLevel,
          audit: true,
          metrics: false,
          handler: () => (msg: { level: number; msg: unknown; type?: string; id?: string; name?: string; event?: string; user?: unknown }) => {
            const level = LEVELS[msg.level] ?? 'info';
            const node = msg.type ? { type: msg.type, id: msg.id, name: msg.name } : undefined;
            if (msg.level === 98) return nodeRedLog.info({ audit: msg.event, user: (msg.user as { username?: string } | undefined)?.username }, 'Node-RED audit');
            nodeRedLog[level]({ node }, describe(msg.msg));
          },
        },
      },
      outpost: context,
    };
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
    let user;
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
      const event: FlowChangeEvent = { user: user.username, role: user.role, ok: res.writableFinished && res.statusCode < 400, status: res.statusCode, method, path };
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
      this.log.info({ path: req.url, origin: req.headers.origin, address: req.socket.remoteAddress }, `flows ${what} websocket refused: no login, or a foreign Origin`);
      refuseUpgrade(socket, new OutpostError('NOT_AUTHENTICATED', `the ${what} websocket needs a login or API token, from this site`));
    }
    return user;
  }
}

/** Answers a refused websocket upgrade with the error's status and closes the socket; Node-RED never sees it. */
function refuseUpgrade(socket: Duplex, err: OutpostError): void {
  const reason = err.status === 401 ? 'Unauthorized' : err.status === 403 ? 'Forbidden' : err.status === 404 ? 'Not Found' : 'Error';
  socket.end(`HTTP/1.1 ${err.status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

/** Log text of what Node-RED logs: strings, or errors (possibly from a function node's own realm, so no instanceof). */
function describe(value: unknown): string {
  if (typeof value === 'string') return value;
  const message = (value as { message?: unknown } | null)?.message;
  if (typeof message === 'string') return message;
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

function refuse(res: Response, err: OutpostError): void {
  res.status(err.status).json({ error: err.toJSON() });
}

/**
 * Hands a request to one of Node-RED's Express 4 apps from the gateway's Express 5 app.
 * Express 4 swaps the request/response prototypes for its own; restore them when the
 * request falls through, as Express does for a mounted sub-app. A body the gateway's
 * JSON parser already read is marked parsed (body-parser 1 checks `_body`).
 */
function delegate(app: express.RequestHandler, req: Request, res: Response, next: NextFunction): void {
  const reqProto = Object.getPrototypeOf(req) as object;
  const resProto = Object.getPrototypeOf(res) as object;
  if (req.body !== undefined) (req as Request & { _body?: boolean })._body = true;
  app(req, res, (err?: unknown) => {
    Object.setPrototypeOf(req, reqProto);
    Object.setPrototypeOf(res, resProto);
    next(err);
  });
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Reads and checks a Node-RED flow export: a JSON array of nodes, each with `id` and `type`. */
export async function readFlowFile(path: string): Promise<Array<Record<string, unknown>>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new OutpostError('CONFIG_INVALID', `flows.flowFile: cannot read ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new OutpostError('CONFIG_INVALID', `flows.flowFile: ${path} is not JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(parsed)) throw new OutpostError('CONFIG_INVALID', `flows.flowFile: ${path} must hold a JSON array of nodes (a Node-RED flow export)`);
  parsed.forEach((n: unknown, i) => {
    const node = n as { id?: unknown; type?: unknown } | null;
    if (!node || typeof node !== 'object' || typeof node.id !== 'string' || typeof node.type !== 'string') {
      throw new OutpostError('CONFIG_INVALID', `flows.flowFile: ${path}: node [${i}] needs a string "id" and "type"`);
    }
  });
  return parsed as Array<Record<string, unknown>>;
}
