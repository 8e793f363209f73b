// What Node-RED is started with: the settings object given to `RED.init` (paths, lockdown,
// the custom-token login, the log bridge into pino), the credential secret it needs, and the
// context Outpost's nodes find in `RED.settings.outpost`. Separate from the service
// (node-red.ts), which decides when Node-RED runs and who reaches it.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFile } from 'node:fs/promises';
import { OutpostError } from '../core/errors.js';
import type { Logger } from '../runtime/log.js';
import type { Bus } from '../runtime/bus.js';
import type { Ingest } from '../runtime/ingest.js';
import type { DatapointRegistry } from '../runtime/datapoints/registry.js';
import type { Store } from '../storage/store.js';
import type { Topics } from '../runtime/topics.js';
import type { AdapterStatus } from '../runtime/adapter-host.js';
import type { FlowAlarms } from '../runtime/alarms/index.js';
import { systemClock, type Clock } from '../core/clock.js';
import type { FlowsConfig } from './config.js';
import { TOKEN_HEADER, type EditorTokens } from './editor-auth.js';
import type { NodeRedDeps } from './node-red.js';

const here = dirname(fileURLToPath(import.meta.url));
/** Outpost's Node-RED nodes (CommonJS, loaded by Node-RED's own loader). */
export const NODES_DIR = join(here, 'nodes');

/** Where the editor and the admin API live, and where HTTP-in/websocket nodes are served. */
export const ADMIN_ROOT = '/flows';
export const NODE_ROOT = '/flows-api';

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
  /** The gateway's alarms, for the `outpost alarm` node (absent: that node reports it cannot work). */
  alarms?: FlowAlarms;
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

/** Never Node-RED's default: without a secret it writes its own key beside the credentials it protects. */
export async function readCredentialSecret(config: FlowsConfig): Promise<string> {
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

/** The settings given to `RED.init` for this gateway. */
export function nodeRedSettings(deps: NodeRedDeps, userDir: string, credentialSecret: string, tokens: EditorTokens): Record<string, unknown> {
  const { config } = deps;
  const context: OutpostNodeContext = {
    bus: deps.bus,
    ingest: deps.ingest,
    registry: deps.registry,
    store: deps.store,
    topics: deps.topics,
    clock: deps.clock ?? systemClock,
    log: deps.log.child({ component: 'flows' }),
    hostStatuses: deps.hostStatuses,
    linkStatuses: deps.linkStatuses,
    alarms: deps.alarms,
  };
  const nodeRedLog = deps.log.child({ component: 'node-red' });
  return {
    userDir,
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
      tokens: async (token: string) => tokens.lookup(token),
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
