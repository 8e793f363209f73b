import { Aedes, type Client, type PublishPacket, type AedesPublishPacket } from 'aedes';
import { createServer, type Server } from 'node:net';
import type { IncomingMessage } from 'node:http';
import { createWebSocketStream, type WebSocket } from 'ws';
import type { Logger } from './log.js';
import { isLoopbackAddress } from './net.js';
import { verifyPassword } from './auth/passwords.js';
import { topicMatches } from './topics.js';

export interface BusUser {
  username: string;
  passwordHash: string;
}

export interface BusOptions {
  log: Logger;
  /** Anonymous clients allowed only from loopback, or never. */
  anonymous: 'loopback' | 'never';
  users: readonly BusUser[];
}

export interface PublishingClient {
  id: string;
  username?: string;
  address?: string;
}

/**
 * What the gateway decides about a publication from an MQTT client. The packet may be
 * rewritten in place (normalised payload, retain flag, or moved to an error topic).
 * Resolving is what lets the broker send PUBACK: durable work happens before.
 */
export type PublishGuard = (client: PublishingClient, packet: PublishPacket) => Promise<void>;

type Deliver = (packet: AedesPublishPacket, callback: () => void) => void;

/**
 * The site bus: an embedded Aedes broker with a TCP listener and MQTT over websocket,
 * plus in-process publish/subscribe for the runtime.
 */
export class Bus {
  guard: PublishGuard | undefined;
  private tcp: Server | undefined;
  private readonly usernames = new Map<string, string>();

  private constructor(
    readonly aedes: Aedes,
    private readonly options: BusOptions,
  ) {
    for (const u of options.users) this.usernames.set(u.username, u.passwordHash);
  }

  static async create(options: BusOptions): Promise<Bus> {
    let bus: Bus | undefined;
    const aedes = await Aedes.createBroker({
      authenticate: (client, username, password, done) => {
        bus!.authenticate(client, username, password).then(
          (ok) => (ok ? done(null, true) : done(Object.assign(new Error('not authorized'), { returnCode: ok === false && username ? 4 : 5 }), false)),
          (err) => done(Object.assign(err as Error, { returnCode: 3 }), false),
        );
      },
      authorizePublish: (client, packet, callback) => {
        const guard = bus!.guard;
        if (!guard || !client) return callback(null);
        guard({ id: client.id, address: remoteAddress(client) }, packet).then(
          () => callback(null),
          (err) => callback(err as Error),
        );
      },
    });
    bus = new Bus(aedes, options);
    aedes.on('clientError', (client, err) => options.log.debug({ client: client?.id, err: err.message }, 'mqtt client error'));
    aedes.on('connectionError', (client, err) => options.log.debug({ err: err.message }, 'mqtt connection error'));
    return bus;
  }

  private async authenticate(client: Client, username: string | undefined, password: Buffer | undefined): Promise<boolean> {
    const address = remoteAddress(client);
    if (username === undefined || username === '') {
      const ok = this.options.anonymous === 'loopback' && isLoopbackAddress(address);
      if (!ok) this.options.log.warn({ client: client.id, address }, 'anonymous MQTT connection refused');
      return ok;
    }
    const hash = this.usernames.get(username);
    const ok = hash !== undefined && password !== undefined && (await verifyPassword(password, hash));
    if (!ok) this.options.log.warn({ client: client.id, address, username }, 'MQTT login failed');
    return ok;
  }

  /** Starts the TCP listener; resolves with the bound port (0 picks a free one). */
  async listen(host: string, port: number): Promise<number> {
    const server = createServer((socket) => this.aedes.handle(socket));
    this.tcp = server;
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

  /** Serves MQTT over an accepted websocket (subprotocol `mqtt`). */
  handleWebSocket(ws: WebSocket, req: IncomingMessage): void {
    const stream = createWebSocketStream(ws);
    stream.on('error', () => stream.destroy());
    this.aedes.handle(stream, req);
  }

  publish(topic: string, payload: string | Buffer, options: { retain?: boolean; qos?: 0 | 1 } = {}): Promise<void> {
    return new Promise((resolve, reject) => {
      this.aedes.publish(
        { cmd: 'publish', topic, payload: typeof payload === 'string' ? Buffer.from(payload) : payload, qos: options.qos ?? 0, retain: options.retain ?? false, dup: false },
        (err) => (err ? reject(err) : resolve()),
      );
    });
  }

  async subscribe(filter: string, handler: (topic: string, payload: Buffer) => void): Promise<() => Promise<void>> {
    const deliver: Deliver = (packet, callback) => {
      // Retained replays and $SYS traffic are not for runtime subscribers.
      if (packet.topic.startsWith('$') || topicMatches(filter, packet.topic) === undefined) return callback();
      try {
        handler(packet.topic, Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload as string));
      } finally {
        callback();
      }
    };
    await new Promise<void>((resolve) => this.aedes.subscribe(filter, deliver, () => resolve()));
    return () => new Promise<void>((resolve) => this.aedes.unsubscribe(filter, deliver, () => resolve()));
  }

  get connectedClients(): number {
    return this.aedes.connectedClients;
  }

  async close(): Promise<void> {
    // Stop accepting first, then close the clients; the listener closes once they are gone.
    const tcp = this.tcp;
    const tcpClosed = tcp ? new Promise<void>((resolve) => tcp.close(() => resolve())) : Promise.resolve();
    await new Promise<void>((resolve) => this.aedes.close(() => resolve()));
    await tcpClosed;
  }
}

function remoteAddress(client: Client): string | undefined {
  const c = client as unknown as { req?: IncomingMessage; conn?: { remoteAddress?: string } };
  return c.req?.socket?.remoteAddress ?? c.conn?.remoteAddress;
}
