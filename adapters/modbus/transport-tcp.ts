import { ModbusClient } from './client.js';
import type { Logger } from '../../runtime/log.js';
import { OutpostError } from '../../core/errors.js';
import './errors.js';
import { InFlight, describeRequest, failSoon, toModbusError, type LinkCallback, type ModbusLink, type ModbusRequest } from './transport.js';

export interface TcpSettings {
  host: string;
  port: number;
  /**
   * Transactions sent before the first answer arrives. Modbus TCP allows several
   * outstanding transactions matched by transaction id (Modbus Messaging on TCP/IP
   * §4.2), but many meters and TCP→RTU gateways answer only one at a time; default 1.
   */
  maxInFlight: number;
  connectTimeoutMs: number;
  /** Least time between two connection attempts after a failure. */
  reconnectMs: number;
}

/**
 * One Modbus TCP connection, opened on demand and reopened after it drops; while the
 * peer is unreachable, requests fail fast with MODBUS_PORT_UNAVAILABLE instead of each
 * waiting for its own connect timeout.
 */
export class TcpLink implements ModbusLink {
  readonly gapMs = 0;
  readonly name: string;
  readonly maxInFlight: number;
  private client: ModbusClient | undefined;
  private connecting: Promise<ModbusClient> | undefined;
  private lastFailureAt = 0;
  private lastError: string | undefined;
  private stopped = false;
  private readonly pending = new InFlight();
  connects = 0;

  constructor(
    readonly settings: TcpSettings,
    private readonly log?: Logger,
  ) {
    this.name = `tcp:${settings.host}:${settings.port}`;
    this.maxInFlight = settings.maxInFlight;
  }

  get error(): string | undefined {
    return this.lastError;
  }

  private connect(): Promise<ModbusClient> {
    if (this.client?.isOpen) return Promise.resolve(this.client);
    if (this.connecting) return this.connecting;
    const since = Date.now() - this.lastFailureAt;
    if (since < this.settings.reconnectMs) {
      return Promise.reject(
        new OutpostError(
          'MODBUS_PORT_UNAVAILABLE',
          `${this.name}: not connected (${this.lastError ?? 'connection failed'}); next attempt in ${this.settings.reconnectMs - since} ms`,
        ),
      );
    }
    const client = new ModbusClient();
    client.on('error', (err: unknown) => {
      this.lastError = (err as Error).message;
    });
    this.connecting = new Promise<ModbusClient>((resolve, reject) => {
      const timer = setTimeout(() => {
        client.destroy(() => undefined);
        reject(new Error(`connect timed out after ${this.settings.connectTimeoutMs} ms`));
      }, this.settings.connectTimeoutMs);
      client.connectTCP(this.settings.host, { port: this.settings.port }, (err: Error | null) => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(client);
      });
    }).then(
      (c) => {
        this.connecting = undefined;
        if (this.stopped) {
          c.close(() => undefined);
          throw new OutpostError('MODBUS_PORT_UNAVAILABLE', `${this.name} is closed`);
        }
        this.client = c;
        this.connects++;
        this.lastError = undefined;
        c.on('close', () => {
          if (this.client !== c) return;
          this.client = undefined;
          this.lastFailureAt = Date.now();
          this.lastError = 'connection closed by peer';
          if (!this.stopped) this.log?.warn({ link: this.name }, 'Modbus TCP connection closed; reconnecting on the next request');
          this.pending.failAll(new OutpostError('MODBUS_PORT_UNAVAILABLE', `${this.name}: connection closed while waiting for an answer`));
        });
        return c;
      },
      (err: Error) => {
        this.connecting = undefined;
        this.lastFailureAt = Date.now();
        this.lastError = err.message;
        throw new OutpostError('MODBUS_PORT_UNAVAILABLE', `${this.name}: ${err.message}`, { cause: err });
      },
    );
    return this.connecting;
  }

  execute(unit: number, request: ModbusRequest, timeoutMs: number, done: LinkCallback): void {
    if (this.stopped) return failSoon(done, new OutpostError('MODBUS_PORT_UNAVAILABLE', `${this.name} is closed`));
    const client = this.client;
    // Connected: straight onto the socket, no promise in between (the poll loop's hot path).
    if (client?.isOpen) return this.issueOn(client, unit, request, timeoutMs, done);
    this.connect().then(
      (c) => this.issueOn(c, unit, request, timeoutMs, done),
      (err: unknown) => done(toModbusError(err, `unit ${unit} ${describeRequest(request)} on ${this.name}`)),
    );
  }

  private issueOn(client: ModbusClient, unit: number, request: ModbusRequest, timeoutMs: number, done: LinkCallback): void {
    this.pending.issue(client, unit, request, timeoutMs, () => this.describe(unit, request), done);
  }

  /** Names a transaction in error messages (built only when there is an error). */
  private describe(unit: number, request: ModbusRequest): string {
    return `unit ${unit} ${describeRequest(request)} on ${this.name}`;
  }

  async close(): Promise<void> {
    this.stopped = true;
    const c = this.client;
    this.client = undefined;
    this.pending.failAll(new OutpostError('MODBUS_PORT_UNAVAILABLE', `${this.name} was closed`));
    if (c) await new Promise<void>((resolve) => c.close(() => resolve()));
  }
}
