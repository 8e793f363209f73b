import { Aedes, type Client, type PublishPacket, type AedesPublishPacket } from 'aedes';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TlsOptions } from 'node:tls';
import { readFileSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import type { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { createWebSocketStream, type WebSocket } from 'ws';
import type { Logger } from './log.js';
import { isLoopbackAddress } from './net.js';
import { verifyPassword } from './auth/passwords.js';
import { topicMatches } from './topics.js';
import { OutpostError } from '../core/errors.js';
import { ALLOW_ALL, mayPublish, maySubscribe, type TopicAcl } from './auth/mqtt-acl.js';
import { MqttFraming } from './broker/framing.js';
import { packetViolation } from './broker/packet-rules.js';
import { TopicEmitter } from './broker/emitter.js';
import { LoginThrottle } from './auth/rate-limit.js';
import { passwordChecks } from './auth/hash-gate.js';

export interface BusUser {
  username: string;
  passwordHash: string;
  /** Topic patterns this user may publish / subscribe to (runtime/auth/mqtt-acl.ts); absent = all. */
  publish?: readonly string[];
  subscribe?: readonly string[];
}

/** Bounds for a 1 GB device: a flood of clients or one huge packet must not exhaust memory. */
export interface BusLimits {
  /** Connected MQTT clients at most (TCP, TLS and websocket together). */
  maxConnections: number;
  /** Largest MQTT packet accepted, fixed header included; bigger ones drop the connection. */
  maxPacketBytes: number;
  /** Per client: inbound QoS 2 messages awaiting PUBREL, and messages queued before CONNACK. */
  maxInflight: number;
  /**
   * A subscriber whose socket stays unwritable this long is disconnected. Until then it holds
   * the broker's delivery slots and every other subscriber waits (Aedes' default is 60 s).
   */
  drainTimeoutMs: number;
}

/**
 * Packets of one connection handed to Aedes at once (it handles them all, then reads again):
 * enough for a QoS 1 window to share one group commit, little enough that a pipelining
 * publisher waits on TCP back-pressure instead of in memory.
 */
const PACKETS_PER_READ = 64;

/** Messages in delivery at once (Aedes' default); the others wait in the topic emitter's queue. */
const DELIVERY_CONCURRENCY = 100;

const DEFAULT_BUS_LIMITS: BusLimits = { maxConnections: 200, maxPacketBytes: 256 * 1024, maxInflight: 100, drainTimeoutMs: 10_000 };

/** A valid hash no password matches, verified for unknown users (same cost as a real check). */
const DUMMY_HASH = 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

/** The dashboard's MQTT-over-websocket clients log in over HTTP; they only read. */
const READ_ONLY: TopicAcl = { publish: [], subscribe: ['#'] };

interface ClientIdentity {
  username: string;
  acl: TopicAcl;
  /** A dashboard connection: the login session it came with (closed when that session ends). */
  sessionId?: string;
}

export interface BusOptions {
  log: Logger;
  /** Anonymous clients allowed only from loopback, or never. */
  anonymous: 'loopback' | 'never';
  users: readonly BusUser[];
  limits?: BusLimits;
  /** Broker state store (retained, sessions, offline queues, wills); in memory when absent. */
  persistence?: unknown;
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
export type PublishGuard = (client: PublishingClient, packet: PublishPacket) => Promise<void> | undefined;

type Deliver = (packet: AedesPublishPacket, callback: () => void) => void;

/**
 * The site bus: an embedded Aedes broker with a TCP listener and MQTT over websocket,
 * plus in-process publish/subscribe for the runtime.
 */
export class Bus {
  guard: PublishGuard | undefined;
  private tcp: Server | undefined;
  private tls: Server | undefined;
  private readonly usernames = new Map<string, BusUser>();
  private readonly identities = new WeakMap<Client, ClientIdentity>();
  private readonly aclWarned = new Set<string>();
  readonly limits: BusLimits;
  /**
   * Connections past the connection limit check, from the start of their authentication until
   * they close. Aedes counts a client only once it is registered, after authentication: 250
   * simultaneous CONNECTs all passed a check on that count with a limit of 200.
   */
  private readonly admitted = new Set<Client>();
  /** Per connection, QoS 2 packet ids stored and not yet released by PUBREL, with the guarded packet (guardExactlyOnce). */
  private readonly exactlyOnce = new WeakMap<Client, Map<number, Promise<PublishPacket>>>();
  private readonly loginThrottle = new LoginThrottle({ maxFailures: 5, maxFailuresPerAddress: 20, maxFailuresPerUser: 100, windowMs: 5 * 60_000 });

  private constructor(
    readonly aedes: Aedes,
    private readonly options: BusOptions,
  ) {
    for (const u of options.users) this.usernames.set(u.username, u);
    this.limits = options.limits ?? DEFAULT_BUS_LIMITS;
  }

  static async create(options: BusOptions): Promise<Bus> {
    let bus: Bus | undefined;
    const limits = options.limits ?? DEFAULT_BUS_LIMITS;
    // MQTT 3.1.1 [MQTT-3.1.3-8]: a zero-byte ClientId with CleanSession=0 gets CONNACK 0x02
    // (identifier rejected) and the connection is closed; Aedes accepts it.
    const zeroIdPersistent = new WeakSet<Client>();
    const mq = new TopicEmitter(DELIVERY_CONCURRENCY, (err, topic) => options.log.error({ err, topic }, 'a broker subscriber failed'));
    const aedes = await Aedes.createBroker({
      ...(options.persistence ? { persistence: options.persistence } : {}),
      mq,
      concurrency: DELIVERY_CONCURRENCY,
      queueLimit: limits.maxInflight,
      maxInflightInbound: limits.maxInflight,
      drainTimeout: limits.drainTimeoutMs,
      preConnect: (client, packet, callback) => {
        if (packet.clientId === '' && !packet.clean) zeroIdPersistent.add(client);
        callback(null, true);
      },
      authenticate: (client, username, password, done) => {
        if (zeroIdPersistent.has(client)) return done(Object.assign(new Error('identifier rejected'), { returnCode: 2 }), false);
        bus!.authenticate(client, username, password).then(
          (ok) => (ok ? done(null, true) : done(Object.assign(new Error('not authorized'), { returnCode: ok === false && username ? 4 : 5 }), false)),
          (err) => done(Object.assign(err as Error, { returnCode: 3 }), false),
        );
      },
      authorizePublish: (client, packet, callback) => {
        if (client && !bus!.publishAllowed(client, packet.topic)) {
          // MQTT 3.1.1 has no negative PUBACK: the connection is dropped, nothing is stored.
          return callback(new Error(`not authorized to publish to ${packet.topic}`));
        }
        const guard = bus!.guard;
        if (!guard || !client) return callback(null);
        if (packet.qos === 2) return bus!.guardExactlyOnce(client, packet, guard, callback);
        let pending: Promise<void> | undefined;
        try {
          pending = guard(bus!.publisher(client), packet);
        } catch (err) {
          return callback(err as Error);
        }
        if (!pending) return callback(null);
        pending.then(
          () => callback(null),
          (err) => callback(err as Error),
        );
      },
      authorizeSubscribe: (client, sub, callback) => {
        // A refused filter gets return code 0x80 in SUBACK (MQTT 3.1.1 §3.9.3).
        if (client && !bus!.subscribeAllowed(client, sub.topic)) return callback(null, null);
        callback(null, sub);
      },
    });
    bus = new Bus(aedes, options);
    // Aedes registers a client whose connection closed between authentication and
    // registration, and nothing unregisters it: each such drop (a flaky cellular device is
    // enough) would hold one of maxConnections for ever (test/proof/broker-register-race.test.ts).
    aedes.on('client', (client) => {
      if ((client as unknown as { closed?: boolean }).closed) (aedes as unknown as { unregisterClient(c: Client): void }).unregisterClient(client);
    });
    // Aedes emits 'error' on the broker when its will sweep fails (a write to a full disk):
    // without a listener an EventEmitter throws it, and that killed the process.
    (aedes as unknown as EventEmitter).on('error', (err: unknown) => options.log.error({ err }, 'broker error'));
    aedes.on('clientError', (client, err) => options.log.debug({ client: client?.id, err: err.message }, 'mqtt client error'));
    aedes.on('connectionError', (_client, err) => options.log.debug({ err: err.message }, 'mqtt connection error'));
    return bus;
  }

  private async authenticate(client: Client, username: string | undefined, password: Buffer | undefined): Promise<boolean> {
    const address = remoteAddress(client);
    if (this.admitted.size >= this.limits.maxConnections) {
      this.options.log.warn({ client: client.id, address, max: this.limits.maxConnections }, 'MQTT connection refused: too many clients');
      throw new Error('too many MQTT clients');
    }
    // Aedes authenticates even a connection that closed after its CONNECT arrived: its close
    // has passed, nothing would release a reservation.
    if ((client as unknown as { conn?: Duplex }).conn?.destroyed) throw new Error('connection closed before authentication');
    // Reserved before anything asynchronous, so simultaneous CONNECTs cannot all pass the check.
    this.admitted.add(client);
    let ok = false;
    try {
      ok = await this.identify(client, address, username, password);
    } finally {
      if (!ok) this.admitted.delete(client);
    }
    return ok;
  }

  private async identify(client: Client, address: string | undefined, username: string | undefined, password: Buffer | undefined): Promise<boolean> {
    if (username === undefined || username === '') {
      // A websocket that passed the HTTP login (dashboard) is a reader.
      const principal = (client as unknown as { req?: IncomingMessage }).req?.outpostPrincipal;
      if (principal && principal.kind !== 'loopback') {
        this.identities.set(client, {
          username: `${principal.kind}:${principal.name}`,
          acl: READ_ONLY,
          ...(principal.sessionId ? { sessionId: principal.sessionId } : {}),
        });
        return true;
      }
      const ok = this.options.anonymous === 'loopback' && isLoopbackAddress(address);
      if (!ok) this.options.log.warn({ client: client.id, address }, 'anonymous MQTT connection refused');
      return ok;
    }
    // Guessing is throttled per address and per (address, user), before any hashing, counting
    // checks under way (parallel connections): the same policy as dashboard logins
    // (runtime/auth/rate-limit.ts); and all password checks share one gate (hash-gate.ts).
    const who = address ?? 'unknown';
    const attempt = this.loginThrottle.begin(who, username);
    if (typeof attempt === 'number') {
      this.options.log.warn({ client: client.id, address, username, retryAfterSeconds: attempt }, 'MQTT login refused: too many failures from this address');
      return false;
    }
    const user = this.usernames.get(username);
    let ok: boolean;
    try {
      // An unknown user costs a hash too, so timing does not tell which names exist.
      ok = await passwordChecks.run(async () => {
        if (user !== undefined && password !== undefined) return verifyPassword(password, user.passwordHash);
        await verifyPassword(password ?? '', DUMMY_HASH);
        return false;
      });
    } catch (err) {
      attempt.abandoned();
      throw err;
    }
    if (!ok || !user) {
      attempt.failed();
      this.options.log.warn({ client: client.id, address, username }, 'MQTT login failed');
      return false;
    }
    attempt.succeeded();
    this.identities.set(client, { username, acl: { publish: user.publish ?? ALLOW_ALL.publish, subscribe: user.subscribe ?? ALLOW_ALL.subscribe } });
    return true;
  }

  /**
   * QoS 2 is exactly once into storage (MQTT 3.1.1 §4.3.3): a packet id the guard stored is
   * not stored again until the client's PUBREL releases it, whether the PUBLISH is sent again
   * on this connection (DUP) or on a later one of the same persistent session (then Aedes'
   * persistence holds it). A retransmission in the same read as its original waits for it.
   */
  private guardExactlyOnce(client: Client, packet: PublishPacket, guard: PublishGuard, callback: (err: Error | null) => void): void {
    const id = packet.messageId!;
    let held = this.exactlyOnce.get(client);
    if (!held) this.exactlyOnce.set(client, (held = new Map()));
    const persistence = (this.aedes as unknown as { persistence: { incomingGetPacket(c: Client, p: { messageId?: number }): Promise<unknown> } }).persistence;
    const original = held.get(id);
    if (original) {
      original.then(
        async (guarded) => {
          // Aedes takes a PUBLISH as a retransmission (PUBREC only, not routed again) when it
          // finds the id in its store, which it writes after the original's guard: wait for that.
          for (let tries = 0; tries < 100; tries++) {
            if (
              await persistence.incomingGetPacket(client, packet).then(
                () => true,
                () => false,
              )
            )
              break;
            await new Promise((resolve) => setImmediate(resolve));
          }
          Object.assign(packet, { topic: guarded.topic, payload: guarded.payload, retain: guarded.retain });
          callback(null);
        },
        (err: Error) => callback(err),
      );
      return;
    }
    const guarded = persistence.incomingGetPacket(client, packet).then(
      () => packet, // stored by an earlier connection of this session, not yet released
      async () => {
        await guard(this.publisher(client), packet);
        return packet;
      },
    );
    held.set(id, guarded);
    guarded.then(
      () => callback(null),
      (err: Error) => {
        held.delete(id);
        callback(err);
      },
    );
  }

  /** The guard's view of a connected client, made once per connection (not per publication). */
  private publisher(client: Client): PublishingClient {
    let known = this.publishers.get(client);
    if (!known) {
      // The login is settled before the first publication: the audit trail names it with the client id.
      const username = this.identities.get(client)?.username;
      this.publishers.set(client, (known = { id: client.id, address: remoteAddress(client), ...(username ? { username } : {}) }));
    }
    return known;
  }

  private readonly publishers = new WeakMap<Client, PublishingClient>();

  /** Closes the dashboard connections that came with a login session that has ended (logout, user removed or changed). */
  endSession(sessionId: string): number {
    let closed = 0;
    const clients = (this.aedes as unknown as { clients: Record<string, Client> }).clients;
    for (const client of Object.values(clients)) {
      if (this.identities.get(client)?.sessionId !== sessionId) continue;
      client.close();
      closed++;
    }
    return closed;
  }

  /** ACL check for a client's publication; anonymous loopback clients may publish anywhere. */
  publishAllowed(client: Client, topic: string): boolean {
    const id = this.identities.get(client);
    if (!id || mayPublish(id.acl, id.username, topic)) return true;
    this.warnAcl(client, id, 'publish', topic);
    return false;
  }

  subscribeAllowed(client: Client, filter: string): boolean {
    const id = this.identities.get(client);
    if (!id || maySubscribe(id.acl, id.username, filter)) return true;
    this.warnAcl(client, id, 'subscribe', filter);
    return false;
  }

  private warnAcl(client: Client, id: ClientIdentity, action: string, topic: string): void {
    const key = `${id.username}|${action}|${topic}`;
    if (this.aclWarned.has(key)) return;
    if (this.aclWarned.size > 1000) this.aclWarned.clear();
    this.aclWarned.add(key);
    this.options.log.warn(
      { client: client.id, username: id.username, address: remoteAddress(client), action, topic },
      'MQTT ACL refused (repeats are not logged)',
    );
  }

  /**
   * Serves one connection through MqttFraming: oversized packets are refused before they are
   * buffered, every packet is checked, and the broker gets at most PACKETS_PER_READ at a time.
   */
  private handleFramed(conn: Duplex, req?: IncomingMessage): void {
    const address = (conn as Socket).remoteAddress ?? req?.socket?.remoteAddress;
    let client: Client | undefined;
    const framed = new MqttFraming(conn, {
      maxPacketBytes: this.limits.maxPacketBytes,
      maxPacketsPerRead: PACKETS_PER_READ,
      inspect: (packet, first) => {
        // PUBREL (type 6, flags 0010) releases a QoS 2 packet id: a later PUBLISH with it is a new message.
        if (packet[0] === 0x62 && packet.length >= 4 && client) this.exactlyOnce.get(client)?.delete(packet.readUInt16BE(2));
        return packetViolation(packet, first);
      },
      onRefused: ({ reason, announcedBytes }) =>
        announcedBytes === undefined
          ? this.options.log.warn({ address, reason }, 'MQTT protocol violation: connection dropped')
          : this.options.log.warn({ address, announced: announcedBytes, max: this.limits.maxPacketBytes }, 'MQTT packet too large: connection dropped'),
    });
    const handled = (client = this.aedes.handle(framed, req as IncomingMessage));
    framed.once('close', () => this.admitted.delete(handled));
  }

  /** Starts the TCP listener; resolves with the bound port (0 picks a free one). */
  async listen(host: string, port: number): Promise<number> {
    const server = createServer((socket) => this.handleFramed(socket));
    // Sockets beyond the client limit are closed by the kernel listener at once.
    server.maxConnections = this.limits.maxConnections + 10;
    this.tcp = server;
    return this.bind(server, host, port);
  }

  /** Starts an MQTTS listener (MQTT over TLS, port 8883 by convention) from PEM files. */
  async listenTls(host: string, port: number, files: { certFile: string; keyFile: string; caFile?: string }): Promise<number> {
    let options: TlsOptions;
    try {
      options = { cert: readFileSync(files.certFile), key: readFileSync(files.keyFile), ...(files.caFile ? { ca: readFileSync(files.caFile) } : {}) };
    } catch (err) {
      throw new OutpostError(
        'CONFIG_INVALID',
        `broker.mqtts: cannot read ${(err as { path?: string }).path ?? 'certificate files'}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    const server = createTlsServer(options, (socket) => this.handleFramed(socket));
    server.maxConnections = this.limits.maxConnections + 10;
    this.tls = server;
    return this.bind(server, host, port);
  }

  private async bind(server: Server, host: string, port: number): Promise<number> {
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
    this.handleFramed(stream, req);
  }

  publish(topic: string, payload: string | Buffer, options: { retain?: boolean; qos?: 0 | 1 } = {}): Promise<void> {
    return new Promise((resolve, reject) => {
      this.aedes.publish(
        {
          cmd: 'publish',
          topic,
          payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
          qos: options.qos ?? 0,
          retain: options.retain ?? false,
          dup: false,
        },
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
      } catch (err) {
        // One failing runtime subscriber must not fail the publication or the broker.
        this.options.log.error({ err, topic: packet.topic, filter }, 'bus subscriber failed');
      }
      callback();
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
    const tls = this.tls;
    const tlsClosed = tls ? new Promise<void>((resolve) => tls.close(() => resolve())) : Promise.resolve();
    await new Promise<void>((resolve) => this.aedes.close(() => resolve()));
    await tcpClosed;
    await tlsClosed;
  }
}

function remoteAddress(client: Client): string | undefined {
  // conn is a PacketSizeGuard around the socket; it forwards remoteAddress.
  const c = client as unknown as { req?: IncomingMessage; conn?: { remoteAddress?: string } };
  // A websocket through a trusted reverse proxy: the client the proxy named (runtime/http/forwarded.ts),
  // so login throttles and logs count each real client, not the proxy's address.
  return c.req?.outpostClient?.address ?? c.req?.socket?.remoteAddress ?? c.conn?.remoteAddress;
}
