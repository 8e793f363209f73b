/**
 * Aedes 1.x persistence on LevelDB: retained messages, subscriptions of persistent
 * sessions, offline QoS 1/2 queues, incoming QoS 2 packets and wills survive a restart.
 *
 * The working state lives in memory with the same structures and matching rules as
 * aedes-persistence's reference MemoryPersistence (asyncPersistence.js), so lookups
 * cost no disk reads; every mutation is written through to LevelDB in order (one writer,
 * batched) before the call resolves, and the state is loaded back in `setup`.
 * It passes aedes-persistence's abstract suite (test/storage/broker-persistence.test.ts).
 *
 * Keys (under `b!` in the gateway's database):
 *   b!r!<topic>                    retained packet
 *   b!s!<client>!<topic>           subscription {qos, rh, rap, nl, subscriptionIdentifier?}
 *   b!o!<client>!<n>               outgoing packet, n orders the client's queue
 *   b!i!<client>!<messageId>       incoming QoS 2 packet awaiting PUBREL
 *   b!w!<client>                   will
 * `<client>` and `<topic>` are URI-encoded, so `!` never occurs inside them.
 */
import { Readable } from 'node:stream';
import { createRequire } from 'node:module';
import { Level } from 'level';
import { mkdir } from 'node:fs/promises';
import { OutpostError } from '../core/errors.js';
import { BrokerWrites, type BrokerOp } from './broker-writes.js';

const require = createRequire(import.meta.url);

// qlobber and aedes-packet ship no TypeScript types; these are the parts used here.
interface QlobberSubLike {
  subscriptionsCount: number;
  add(topic: string, sub: Record<string, unknown>): void;
  remove(topic: string, sub: { clientId: string; topic: string }): void;
  match(topic: string): Array<Record<string, unknown>>;
}
interface QlobberTrueLike {
  add(topic: string): void;
  test(topic: string): boolean;
}
const QlobberSub = require('qlobber/aedes/qlobber-sub') as new (options: object) => QlobberSubLike;
const { QlobberTrue } = require('qlobber') as { QlobberTrue: new (options: object) => QlobberTrueLike };
const Packet = require('aedes-packet') as new (original: object, broker?: object) => BrokerPacket;

const QLOBBER_OPTIONS = { wildcard_one: '+', wildcard_some: '#', separator: '/' };

export interface BrokerPacket {
  cmd?: string;
  topic: string;
  payload: Buffer | string;
  qos?: number;
  retain?: boolean;
  messageId?: number;
  brokerId?: string;
  brokerCounter?: number;
  clientId?: string;
  [key: string]: unknown;
}

interface ClientRef {
  id: string;
}
interface SubRecord {
  qos: number;
  rh?: number;
  rap?: boolean;
  nl?: boolean;
  subscriptionIdentifier?: number;
}
interface Subscription extends SubRecord {
  topic: string;
}
interface BrokerRef {
  id: string;
}

type Op = BrokerOp;

const enc = encodeURIComponent;
const dec = decodeURIComponent;
const COUNTER_WIDTH = 15;

/** JSON with Buffers as `{"$b": base64}` (payloads, MQTT 5 correlation data). */
function serialize(packet: object): string {
  return JSON.stringify(packet, function (this: Record<string, unknown>, key: string, value: unknown) {
    const original = this[key];
    return Buffer.isBuffer(original) ? { $b: original.toString('base64') } : value;
  });
}

function deserialize<T>(raw: string): T {
  return JSON.parse(raw, (_key, value: unknown) => {
    if (value && typeof value === 'object' && typeof (value as { $b?: unknown }).$b === 'string' && Object.keys(value).length === 1) {
      return Buffer.from((value as { $b: string }).$b, 'base64');
    }
    return value;
  }) as T;
}

export interface LevelBrokerPersistenceOptions {
  /** An open LevelDB to share (the store's), or a path for a database of its own. */
  /** A database shared with the store (its `brokerDatabase()`, capability `brokerState`; values read as text here). */
  db?: Level<string, Buffer | string>;
  path?: string;
  /**
   * fsync broker state writes (default false). Without it the state survives a process
   * crash or kill -9 (LevelDB's log is written before each call resolves) but the last
   * writes may be lost on power loss; the time series keeps its own fsync either way.
   */
  sync?: boolean;
  /**
   * Retained topics kept in memory only. The runtime restores the latest value of every
   * datapoint from the time series at start-up, so writing each value's retained copy to
   * broker state as well would double the disk writes of the ingest path for nothing.
   */
  volatileRetained?: (topic: string) => boolean;
  /** Broker state writes started failing (kept in memory, retried: storage/broker-writes.ts) or caught up (undefined). */
  onWriteError?: (error: OutpostError | undefined) => void;
  /** False while the shared database must not be written (the store's read-only alarm); see `resumeWrites`. */
  writable?: () => boolean;
}

/** Outgoing entry mirrored on disk: the packet as aedes sees it plus its key. */
interface Outgoing {
  packet: BrokerPacket;
  key: string;
}

export class LevelBrokerPersistence {
  private readonly retained = new Map<string, BrokerPacket>();
  private readonly subscriptions = new Map<string, Map<string, SubRecord>>();
  private readonly outgoing = new Map<string, Outgoing[]>();
  private readonly incoming = new Map<string, Map<number, BrokerPacket>>();
  private readonly wills = new Map<string, BrokerPacket>();
  private readonly trie = new QlobberSub(QLOBBER_OPTIONS);
  private clientsCount = 0;
  private counter = 0;
  private destroyed = false;
  private brokerRef: BrokerRef | undefined;
  private readonly db: Level<string, Buffer | string>;
  private readonly ownsDb: boolean;
  private readonly writes: BrokerWrites;

  constructor(private readonly options: LevelBrokerPersistenceOptions) {
    if (options.db) {
      this.db = options.db;
      this.ownsDb = false;
    } else if (options.path) {
      this.db = new Level<string, Buffer | string>(options.path, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
      this.ownsDb = true;
    } else {
      throw new OutpostError('INTERNAL', 'broker persistence needs a database or a path');
    }
    this.writes = new BrokerWrites({ db: this.db, sync: options.sync, onError: options.onWriteError, writable: options.writable });
  }

  /** The shared database is writable again (the store left its alarm state): write what was held back. */
  resumeWrites(): void {
    this.writes.resume();
  }

  get broker(): BrokerRef | undefined {
    return this.brokerRef;
  }

  async setup(broker: BrokerRef): Promise<void> {
    this.brokerRef = broker;
    if (this.ownsDb) {
      await mkdir(this.options.path!, { recursive: true });
      await this.db.open();
    }
    await this.load();
  }

  /** Rebuilds the in-memory state from disk. */
  private async load(): Promise<void> {
    for await (const [key, buffered] of this.db.iterator({ gte: 'b!', lt: 'b!\xff', valueEncoding: 'utf8' })) {
      // Text in any case (a shared database reads bytes by default).
      const value = typeof buffered === 'string' ? buffered : buffered.toString('utf8');
      const parts = key.split('!');
      switch (parts[1]) {
        case 'r': {
          this.retained.set(dec(parts[2]!), deserialize<BrokerPacket>(value));
          break;
        }
        case 's': {
          const clientId = dec(parts[2]!);
          const topic = dec(parts[3]!);
          const record = JSON.parse(value) as SubRecord;
          let stored = this.subscriptions.get(clientId);
          if (!stored) {
            this.subscriptions.set(clientId, (stored = new Map()));
            this.clientsCount++;
          }
          stored.set(topic, record);
          if (record.qos > 0) this.trie.add(topic, { clientId, topic, qos: record.qos, rh: record.rh, rap: record.rap, nl: record.nl });
          break;
        }
        case 'o': {
          const clientId = dec(parts[2]!);
          const n = Number(parts[3]);
          this.counter = Math.max(this.counter, n);
          // Keep every field (messageId, cmd of a pubrel) exactly as it was stored.
          const packet = Object.assign(Object.create((Packet as unknown as { prototype: object }).prototype) as BrokerPacket, deserialize<BrokerPacket>(value));
          let queue = this.outgoing.get(clientId);
          if (!queue) this.outgoing.set(clientId, (queue = []));
          queue.push({ packet, key });
          break;
        }
        case 'i': {
          const clientId = dec(parts[2]!);
          let store = this.incoming.get(clientId);
          if (!store) this.incoming.set(clientId, (store = new Map()));
          store.set(Number(parts[3]), deserialize<BrokerPacket>(value));
          break;
        }
        case 'w': {
          // brokerId stays the old broker's, so aedes publishes wills of clients that were
          // connected when the previous process died.
          this.wills.set(dec(parts[2]!), deserialize<BrokerPacket>(value));
          break;
        }
      }
    }
  }

  /** Ordered, batched write-through; resolves once the ops are in LevelDB (or deferred: storage/broker-writes.ts). */
  private write(ops: Op[]): Promise<void> {
    return this.writes.write(ops);
  }

  // ---- retained ----

  async storeRetained(pkt: BrokerPacket): Promise<void> {
    const packet = { ...pkt };
    if (packet.payload.length === 0) {
      this.retained.delete(packet.topic);
      await this.write([{ type: 'del', key: `b!r!${enc(packet.topic)}` }]);
    } else {
      this.retained.set(packet.topic, packet);
      // Every newest reading is retained: those the store rebuilds at start stay in memory only.
      if (this.options.volatileRetained?.(packet.topic)) return;
      await this.write([{ type: 'put', key: `b!r!${enc(packet.topic)}`, value: serialize(packet) }]);
    }
  }

  private *retainedByPattern(pattern: string): Generator<BrokerPacket> {
    const qlobber = new QlobberTrue(QLOBBER_OPTIONS);
    qlobber.add(pattern);
    for (const [topic, packet] of this.retained) if (qlobber.test(topic)) yield packet;
  }

  createRetainedStream(pattern: string): Readable {
    return Readable.from(this.retainedByPattern(pattern));
  }

  createRetainedStreamCombi(patterns: string[]): Readable {
    const self = this;
    function* all(): Generator<BrokerPacket> {
      for (const p of patterns) yield* self.retainedByPattern(p);
    }
    return Readable.from(all());
  }

  // ---- subscriptions ----

  async addSubscriptions(client: ClientRef, subs: Subscription[]): Promise<void> {
    let stored = this.subscriptions.get(client.id);
    if (!stored) {
      stored = new Map();
      this.subscriptions.set(client.id, stored);
      this.clientsCount++;
    }
    const ops: Op[] = [];
    for (const sub of subs) {
      const storedSub = stored.get(sub.topic);
      const record: SubRecord = { qos: sub.qos, rh: sub.rh, rap: sub.rap, nl: sub.nl };
      // MQTT 5 subscription identifier: kept per client, not in the trie (as the reference does).
      if (sub.subscriptionIdentifier !== undefined) record.subscriptionIdentifier = sub.subscriptionIdentifier;
      if (sub.qos > 0) {
        this.trie.add(sub.topic, { clientId: client.id, topic: sub.topic, qos: sub.qos, rh: sub.rh, rap: sub.rap, nl: sub.nl });
      } else if (storedSub && storedSub.qos > 0) {
        this.trie.remove(sub.topic, { clientId: client.id, topic: sub.topic });
      }
      stored.set(sub.topic, record);
      ops.push({ type: 'put', key: `b!s!${enc(client.id)}!${enc(sub.topic)}`, value: JSON.stringify(record) });
    }
    await this.write(ops);
  }

  async removeSubscriptions(client: ClientRef, subs: string[]): Promise<void> {
    const stored = this.subscriptions.get(client.id);
    const ops: Op[] = [];
    if (stored) {
      for (const topic of subs) {
        const storedSub = stored.get(topic);
        if (storedSub !== undefined) {
          if (storedSub.qos > 0) this.trie.remove(topic, { clientId: client.id, topic });
          stored.delete(topic);
          ops.push({ type: 'del', key: `b!s!${enc(client.id)}!${enc(topic)}` });
        }
      }
      if (stored.size === 0) {
        this.clientsCount--;
        this.subscriptions.delete(client.id);
      }
    }
    await this.write(ops);
  }

  async subscriptionsByClient(client: ClientRef): Promise<Subscription[]> {
    const subs: Subscription[] = [];
    const stored = this.subscriptions.get(client.id);
    if (stored) for (const [topic, record] of stored) subs.push({ topic, ...record });
    return subs;
  }

  async countOffline(): Promise<{ subsCount: number; clientsCount: number }> {
    return { subsCount: this.trie.subscriptionsCount, clientsCount: this.clientsCount };
  }

  async subscriptionsByTopic(pattern: string): Promise<Array<Record<string, unknown>>> {
    return this.trie.match(pattern);
  }

  async cleanSubscriptions(client: ClientRef): Promise<void> {
    const stored = this.subscriptions.get(client.id);
    const ops: Op[] = [];
    if (stored) {
      for (const [topic, record] of stored) {
        if (record.qos > 0) this.trie.remove(topic, { clientId: client.id, topic });
        ops.push({ type: 'del', key: `b!s!${enc(client.id)}!${enc(topic)}` });
      }
      this.clientsCount--;
      this.subscriptions.delete(client.id);
    }
    await this.write(ops);
  }

  getClientList(topic: string): Readable {
    const subscriptions = this.subscriptions;
    function* clients(): Generator<string> {
      for (const [clientId, topics] of subscriptions) if (topics.has(topic)) yield clientId;
    }
    return Readable.from(clients());
  }

  // ---- outgoing (offline and in-flight QoS > 0 deliveries) ----

  private enqueueOne(clientId: string, packet: BrokerPacket, ops: Op[]): void {
    let queue = this.outgoing.get(clientId);
    if (!queue) this.outgoing.set(clientId, (queue = []));
    const p = new Packet(packet);
    const key = `b!o!${enc(clientId)}!${String(++this.counter).padStart(COUNTER_WIDTH, '0')}`;
    queue.push({ packet: p, key });
    ops.push({ type: 'put', key, value: serialize(p) });
  }

  async outgoingEnqueue(sub: { clientId: string }, packet: BrokerPacket): Promise<void> {
    const ops: Op[] = [];
    this.enqueueOne(sub.clientId, packet, ops);
    await this.write(ops);
  }

  async outgoingEnqueueCombi(subs: Array<{ clientId: string }>, packet: BrokerPacket): Promise<void> {
    const ops: Op[] = [];
    for (const sub of subs) this.enqueueOne(sub.clientId, packet, ops);
    await this.write(ops);
  }

  async outgoingUpdate(client: ClientRef, packet: BrokerPacket): Promise<void> {
    const queue = this.outgoing.get(client.id) ?? [];
    for (const entry of queue) {
      const temp = entry.packet;
      if (temp.brokerId === packet.brokerId) {
        if (temp.brokerCounter === packet.brokerCounter) {
          temp.messageId = packet.messageId;
          return this.write([{ type: 'put', key: entry.key, value: serialize(temp) }]);
        }
        // packet ids wrap at 65535: same id with another counter is another packet, go on.
      } else if (temp.messageId === packet.messageId) {
        entry.packet = packet;
        return this.write([{ type: 'put', key: entry.key, value: serialize(packet) }]);
      }
    }
    throw new Error('no such packet');
  }

  async outgoingClearMessageId(client: ClientRef, packet: { messageId?: number }): Promise<BrokerPacket | undefined> {
    const queue = this.outgoing.get(client.id);
    if (!queue) return undefined;
    for (let i = 0; i < queue.length; i++) {
      const entry = queue[i]!;
      if (entry.packet.messageId === packet.messageId) {
        queue.splice(i, 1);
        if (queue.length === 0) this.outgoing.delete(client.id);
        await this.write([{ type: 'del', key: entry.key }]);
        return entry.packet;
      }
    }
    return undefined;
  }

  outgoingStream(client: ClientRef): Readable {
    // A copy, so deliveries that clear entries do not disturb the stream.
    return Readable.from((this.outgoing.get(client.id) ?? []).map((e) => e.packet));
  }

  // ---- incoming QoS 2 ----

  async incomingStorePacket(client: ClientRef, packet: BrokerPacket): Promise<void> {
    let store = this.incoming.get(client.id);
    if (!store) this.incoming.set(client.id, (store = new Map()));
    const p = new Packet(packet);
    p.messageId = packet.messageId;
    store.set(packet.messageId!, p);
    await this.write([{ type: 'put', key: `b!i!${enc(client.id)}!${packet.messageId}`, value: serialize(p) }]);
  }

  async incomingGetPacket(client: ClientRef, packet: { messageId?: number }): Promise<BrokerPacket> {
    const found = this.incoming.get(client.id)?.get(packet.messageId!);
    if (!found) throw new Error('no such packet');
    return found;
  }

  async incomingDelPacket(client: ClientRef, packet: { messageId?: number }): Promise<void> {
    const store = this.incoming.get(client.id);
    if (!store?.has(packet.messageId!)) throw new Error('no such packet');
    store.delete(packet.messageId!);
    await this.write([{ type: 'del', key: `b!i!${enc(client.id)}!${packet.messageId}` }]);
  }

  async cleanIncoming(client: ClientRef): Promise<void> {
    const store = this.incoming.get(client.id);
    this.incoming.delete(client.id);
    if (store) await this.write([...store.keys()].map((id) => ({ type: 'del' as const, key: `b!i!${enc(client.id)}!${id}` })));
  }

  // ---- wills ----

  async putWill(client: ClientRef, packet: BrokerPacket): Promise<void> {
    packet.brokerId = this.brokerRef?.id;
    packet.clientId = client.id;
    this.wills.set(client.id, packet);
    await this.write([{ type: 'put', key: `b!w!${enc(client.id)}`, value: serialize(packet) }]);
  }

  async getWill(client: ClientRef): Promise<BrokerPacket | undefined> {
    return this.wills.get(client.id);
  }

  async delWill(client: ClientRef): Promise<BrokerPacket | undefined> {
    const will = this.wills.get(client.id);
    // Aedes deletes the will at every CONNECT: a client without one costs no write.
    if (!will) return undefined;
    this.wills.delete(client.id);
    await this.write([{ type: 'del', key: `b!w!${enc(client.id)}` }]);
    return will;
  }

  streamWill(brokers: Record<string, unknown> = {}): Readable {
    const wills = this.wills;
    function* unknownBrokers(): Generator<BrokerPacket> {
      for (const will of wills.values()) if (!brokers[will.brokerId!]) yield will;
    }
    return Readable.from(unknownBrokers());
  }

  async destroy(): Promise<void> {
    if (this.destroyed) throw new Error('destroyed called twice!');
    this.destroyed = true;
    // Let queued writes land before the database closes.
    await this.writes.close();
    if (this.ownsDb) await this.db.close();
  }
}

/** The factory the bus wires in: `Aedes.createBroker({ persistence: createBrokerPersistence({ db }) })`. */
export function createBrokerPersistence(options: LevelBrokerPersistenceOptions): LevelBrokerPersistence {
  return new LevelBrokerPersistence(options);
}
