import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { RPCServer, createRPCError } from 'ocpp-rpc';
import { verifyPassword } from '../../runtime/auth/passwords.js';
import { isLoopbackAddress } from '../../runtime/net.js';
import { isOutpostError } from '../../core/errors.js';
import type { AdapterContext } from '../../runtime/adapter.js';
import type { CentralSystem } from './central.js';
import type { ChargerConnection } from './charger-state.js';
import { actionHandlers } from './handlers/index.js';
import { checkConnectorId } from './handlers/connector-bound.js';
import { learnConnectorCount } from './connector-count.js';
import { createOcpp16Validator } from './codec.js';

const SUBPROTOCOL = 'ocpp1.6';

/**
 * The OCPP-J transport: an ocpp-rpc RPCServer that does not listen itself but takes the
 * websocket upgrades of the gateway's HTTP server under `<path>/<chargePointId>` (OCPP-J 1.6 §3.1).
 * Strict mode validates every inbound and outbound payload against the OCPP 1.6 JSON schemas.
 */
export class OcppServer {
  private readonly server: RPCServer;
  /** scrypt costs ~16 MB; at most this many run at once, so a connection storm cannot exhaust RAM. */
  private verifying = 0;
  private readonly waiters: Array<() => void> = [];

  constructor(
    private readonly ctx: AdapterContext,
    private readonly central: CentralSystem,
  ) {
    const { options } = central;
    this.server = new RPCServer({
      protocols: [SUBPROTOCOL],
      strictMode: true,
      strictModeValidators: [createOcpp16Validator()],
      callTimeoutMs: options.callTimeoutMs,
      pingIntervalMs: 30_000,
      maxBadMessages: options.maxBadMessages,
      respondWithDetailedErrors: false,
      wssOptions: { maxPayload: 512 * 1024 },
    });
    this.server.auth((accept, reject, handshake) => {
      this.authenticate(handshake.identity, handshake.endpoint, handshake.protocols, handshake.password, handshake.request)
        .then((refusal) => {
          if (refusal) {
            this.central.counters.refused[refusal.reason] = (this.central.counters.refused[refusal.reason] ?? 0) + 1;
            this.central.scheduleStatus();
            ctx.log.warn({ charger: handshake.identity.slice(0, 64), remote: handshake.remoteAddress, reason: refusal.reason }, 'charger connection refused');
            reject(refusal.status, refusal.message);
          } else {
            accept({ identity: handshake.identity }, SUBPROTOCOL);
          }
        })
        .catch((err: Error) => {
          ctx.log.error({ err: err.message }, 'charger authentication failed');
          reject(500, 'Internal Server Error');
        });
    });
    this.server.on('client', (client: ChargerConnection & { handshake: { remoteAddress?: string } }) => this.onClient(client));
    this.server.on('error', (err: Error) => ctx.log.warn({ err: err.message }, 'OCPP websocket server error'));
  }

  /** The upgrade handler for ctx.http.upgrade. */
  get handleUpgrade(): (req: IncomingMessage, socket: import('node:stream').Duplex, head: Buffer) => void {
    const handle = this.server.handleUpgrade;
    return (req, socket, head) => void handle(req, socket as never, head);
  }

  private async authenticate(
    identity: string,
    endpoint: string,
    protocols: Set<string>,
    password: Buffer | undefined,
    request: IncomingMessage,
  ): Promise<{ status: number; message: string; reason: string } | undefined> {
    if (endpoint !== this.central.options.path || !identity) return { status: 404, message: 'Not Found', reason: 'wrong-path' };
    if (!protocols.has(SUBPROTOCOL)) return { status: 400, message: `subprotocol ${SUBPROTOCOL} required`, reason: 'subprotocol' };
    const config = this.central.configFor(identity);
    if (!config) {
      // Auto-accepted identities must not alias a known charger's datapoints (`CP1` vs `cp1`).
      if (this.central.options.autoAccept && !this.central.collidesWith(identity)) return undefined;
      return { status: 401, message: 'Unauthorized', reason: this.central.options.autoAccept ? 'identity-collision' : 'unknown-charger' };
    }
    if (config.securityProfile === 2 && !isTls(request)) return { status: 401, message: 'Unauthorized', reason: 'tls-required' };
    if (config.securityProfile === 0) return undefined;
    if (!password || !config.password) return { status: 401, message: 'Unauthorized', reason: 'no-password' };
    const ok = await this.limited(() => verifyPassword(password, config.password!));
    return ok ? undefined : { status: 401, message: 'Unauthorized', reason: 'wrong-password' };
  }

  private async limited<T>(fn: () => Promise<T>): Promise<T> {
    while (this.verifying >= 2) await new Promise<void>((r) => this.waiters.push(r));
    this.verifying++;
    try {
      return await fn();
    } finally {
      this.verifying--;
      this.waiters.shift()?.();
    }
  }

  private onClient(client: ChargerConnection & { handshake: { remoteAddress?: string } }): void {
    const identity = client.identity!;
    const { central, ctx } = this;
    const charger = central.attach(identity, client);
    ctx.log.info({ charger: identity, remote: client.handshake.remoteAddress }, 'charger connected');
    for (const [action, handler] of Object.entries(actionHandlers)) {
      client.handle(action, async ({ params }) => {
        charger.lastSeen = ctx.clock.now();
        try {
          checkConnectorId(central, charger, action, params);
          return await handler(central, charger, params as never);
        } catch (err) {
          throw toCallError(err);
        }
      });
    }
    client.on('badMessage', ({ buffer, response }: { buffer: Buffer; response: unknown[] | null }) => {
      central.counters.badFrames++;
      // ocpp-rpc answers an unknown message type with id "-1" although the frame had one.
      if (Array.isArray(response) && response[1] === '-1') {
        const id = recoverMessageId(buffer);
        if (id !== undefined) response[1] = id;
      }
      // ocpp-rpc answers with OCPP 2.0.1 codes (RpcFrameworkError, MessageTypeNotSupported).
      // OCPP-J 1.6 §4.2.3 has neither: a frame that is not a valid CALL/CALLRESULT/CALLERROR
      // array is a FormationViolation. The response array is sent right after this event.
      if (Array.isArray(response) && (response[2] === 'RpcFrameworkError' || response[2] === 'MessageTypeNotSupported')) response[2] = 'FormationViolation';
      central.scheduleStatus();
    });
    client.on(
      'strictValidationFailure',
      ({ method, outbound, isCall, error }: { method: string; outbound: boolean; isCall: boolean; error: { rpcErrorCode?: string; message: string } }) => {
        if (outbound) {
          central.counters.outputViolations++;
          ctx.log.error({ charger: identity, action: method, isCall, reason: error.message }, 'our OCPP message failed the schema');
        } else {
          let code = error.rpcErrorCode ?? 'FormationViolation';
          if (code === 'FormatViolation') code = 'FormationViolation';
          if (code === 'OccurenceConstraintViolation') code = 'OccurrenceConstraintViolation';
          central.counters.schemaViolations[code] = (central.counters.schemaViolations[code] ?? 0) + 1;
          central.warnOnce(
            `schema:${identity}:${method}:${code}`,
            { charger: identity, action: method, ocppError: code, reason: error.message.slice(0, 300) },
            'charger message violates the OCPP 1.6 schema',
          );
        }
        central.scheduleStatus();
      },
    );
    client.on('callError', ({ outbound, method, error }: { outbound: boolean; method: string; error: { rpcErrorCode?: string; message: string } }) => {
      if (outbound) return;
      if (error.rpcErrorCode === 'NotImplemented') {
        central.counters.notImplemented++;
        central.warnOnce(`notimpl:${identity}:${method}`, { charger: identity, action: method }, 'charger sent an action we do not implement');
      } else if (!error.rpcErrorCode || error.rpcErrorCode === 'InternalError') {
        ctx.log.error({ charger: identity, action: method, err: error.message }, 'OCPP handler failed');
      }
    });
    client.once('close', ({ code, reason }: { code: number; reason: string }) => {
      ctx.log.info({ charger: identity, code, reason: String(reason ?? '').slice(0, 120) }, 'charger disconnected');
      central.detach(identity, client);
    });
    // A charger that reconnects does not send BootNotification again: ask for its NumberOfConnectors
    // (also after a gateway restart, when nothing of it is remembered), then for its connector
    // states. Calls to one charger go out one at a time (ocpp-rpc callConcurrency 1), in this
    // order, so the states arrive once the bound is known.
    setImmediate(() => {
      void learnConnectorCount(central, identity);
      central
        .call(identity, 'TriggerMessage', { requestedMessage: 'StatusNotification' })
        .catch((err: Error) => ctx.log.debug({ charger: identity, reason: err.message }, 'TriggerMessage StatusNotification not accepted'));
      // Load management: new sessions start at the minimum until planned (also after a reconnect).
      void central.sendSafetyProfiles(identity);
    });
  }

  async close(): Promise<void> {
    await this.server.close({ code: 1001, reason: 'gateway stopping', force: true });
  }
}

/**
 * A handler's refusal that names an OCPP-J error code (`details.ocppError`) goes to the charger
 * as that CALLERROR (OCPP-J 1.6 §4.2.3) with empty details; anything else is left to ocpp-rpc.
 */
function toCallError(err: unknown): unknown {
  if (!isOutpostError(err)) return err;
  const code = (err.details as { ocppError?: unknown } | undefined)?.ocppError;
  return typeof code === 'string' ? createRPCError(code, err.message, {}) : err;
}

/** TLS terminated by the gateway itself, or by a reverse proxy on this host that says so. */
function isTls(request: IncomingMessage): boolean {
  if ((request.socket as TLSSocket).encrypted) return true;
  return isLoopbackAddress(request.socket.remoteAddress) && String(request.headers['x-forwarded-proto'] ?? '').toLowerCase() === 'https';
}

/** The message id of a frame that is valid JSON but not a valid OCPP-J message, if it has one. */
function recoverMessageId(buffer: Buffer): string | undefined {
  try {
    const frame = JSON.parse(buffer.toString('utf8')) as unknown;
    if (Array.isArray(frame) && typeof frame[1] === 'string' && frame[1].length <= 36) return frame[1];
  } catch {
    // broken JSON: there is no id to recover, "-1" stays
  }
  return undefined;
}
