import type { IClientOptions, MqttClient, Packet } from 'mqtt';
import { OutpostError } from '../../core/errors.js';
import './errors.js';
import type { Logger } from '../log.js';
import type { PointRecord, Store } from '../../storage/store.js';
import type { Batch } from './link.js';
import { BdSeqCounter } from './sparkplug-bdseq.js';
import { SparkplugSession, type SparkplugMessage } from './sparkplug.js';

/** Current value of every known datapoint (storage), for births. */
export type CurrentValues = () => Promise<PointRecord[]>;

export interface SparkplugEdgeOptions {
  groupId: string;
  edgeNodeId: string;
  /** Where the last used bdSeq is kept (`<dataDir>/sync/sparkplug-<link>.json`); none: from 0 each start. */
  bdSeqFile?: string;
  current?: CurrentValues;
  linkName: string;
  ackTimeoutMs: number;
  log: Logger;
  now: () => number;
}

/** An UNSUBSCRIBE of a filter nobody holds: its UNSUBACK is the acknowledgement of what went before. */
const FENCE_PREFIX = '$outpost/fence/';

/**
 * The MQTT side of a Sparkplug B edge node (3.0.0): the NDEATH will with a persisted bdSeq,
 * the birth sequence at every session start (with the current value of every known
 * datapoint) and on rebirth requests, and batches as NDATA/DDATA.
 *
 * Births and data go at QoS 0, not retained ([tck-id-payloads-nbirth-qos], [-dbirth-qos],
 * [-ndata-qos], [-ddata-qos]); only the will is QoS 1 ([tck-id-payloads-ndeath-will-message-qos]).
 * QoS 0 has no PUBACK, so a batch counts as delivered once the server answered an UNSUBSCRIBE
 * sent after it on the same connection (MQTT 3.1.1 §3.10.4: an UNSUBACK is sent even when
 * nothing was subscribed; servers handle one connection's packets in order). A connection
 * lost before that fails the batch and the drain resends it from the cursor — at-least-once
 * towards the server, as with JSON; what the server then delivers at QoS 0 is the spec's choice.
 *
 * Everything that touches the session runs one job at a time, in call order, so seq numbers
 * go out in order: a rebirth request waits for nothing but the job publishing right now, and
 * no data goes out between it and its births ([tck-id-operational-behavior-data-commands-rebirth-action-1]).
 */
export class SparkplugEdge {
  readonly session: SparkplugSession;
  private readonly bdSeq: BdSeqCounter;
  private client: MqttClient | undefined;
  /** Changes with every connect and disconnect: a job queued for one connection never runs on the next. */
  private generation = 0;
  private connected = false;
  private turn: Promise<void> = Promise.resolve();
  private rebirthWanted = false;
  private readonly pending = new Set<(err?: OutpostError) => void>();
  private readonly fence: string;

  constructor(private readonly o: SparkplugEdgeOptions) {
    this.session = new SparkplugSession(o.groupId, o.edgeNodeId, o.now);
    this.bdSeq = new BdSeqCounter(o.bdSeqFile, o.log);
    this.fence = `${FENCE_PREFIX}${o.edgeNodeId}`;
  }

  /** Reads the persisted bdSeq: call before building the CONNECT options. */
  async load(): Promise<void> {
    await this.bdSeq.load();
  }

  /** Will of the CONNECT: NDEATH, QoS 1, not retained (§6.4.25 NDEATH). */
  will(): NonNullable<IClientOptions['will']> {
    const death = this.session.death(this.bdSeq.value);
    return { topic: death.topic, payload: death.payload, qos: 1, retain: false };
  }

  /** NDEATH published before a clean disconnect ([tck-id-operational-behavior-edge-node-intentional-disconnect-ndeath]). */
  death(): SparkplugMessage {
    return this.session.death(this.bdSeq.value);
  }

  /**
   * Watches the client's CONNECT/CONNACK for the bdSeq bookkeeping. MQTT.js hands the CONNECT
   * to the socket before it is connected; it reaches the server only once the TCP (or TLS)
   * connection is up, so that is when the bdSeq counts as sent. Transports without that
   * event (websockets) count it at CONNACK.
   */
  attach(client: MqttClient): void {
    this.client = client;
    client.on('packetsend', (packet: Packet) => {
      if (packet.cmd !== 'connect') return;
      const stream = client.stream as unknown as { connecting?: boolean; encrypted?: boolean; once(event: string, listener: () => void): unknown };
      if (stream.connecting === false) this.bdSeq.connectSent();
      else if (stream.connecting === true) stream.once(stream.encrypted ? 'secureConnect' : 'connect', () => this.bdSeq.connectSent());
    });
    client.on('connect', () => this.bdSeq.connectSent());
    client.on('packetreceive', (packet: Packet) => {
      if (packet.cmd === 'connack' && (packet.returnCode ?? packet.reasonCode ?? 0) !== 0) this.bdSeq.connectRefused();
    });
  }

  /** CONNACK accepted: the session takes the bdSeq of this CONNECT's will; births go out (§5.4). Resolves once delivered. */
  async online(): Promise<void> {
    this.generation++;
    this.connected = true;
    this.rebirthWanted = false;
    this.session.ended();
    this.session.bdSeq = this.bdSeq.value;
    // Before the NBIRTH: a restart must not repeat a bdSeq a server may have published a death with.
    await this.bdSeq.persisted();
    await this.run(this.generation, () => this.births());
  }

  /** The connection closed: pending batches fail, the next CONNECT's will carries the next bdSeq if this one was used. */
  offline(client: MqttClient): void {
    this.generation++;
    this.connected = false;
    this.session.ended();
    this.failPending(new OutpostError('SYNC_LINK_DOWN', `connection to ${this.o.linkName} closed`));
    if (this.bdSeq.connectionClosed() && client.options.will) client.options.will.payload = this.will().payload;
  }

  /** A batch of either lane as NDATA/DDATA (with the births it needs). Resolves with the bytes once the server has them. */
  send(batch: Batch): Promise<number> {
    return this.run(this.generation, async () => this.session.encode(batch.records, batch.key));
  }

  /**
   * NCMD: `Node Control/Rebirth` = true asks for one new birth sequence, same bdSeq (§5.17
   * Commands). A retained NCMD is stale by definition (hosts publish them unretained,
   * [tck-id-payloads-ncmd-retain]): ignored, or every reconnect would answer it again.
   */
  onCommand(payload: Buffer, retained = false): void {
    if (retained) {
      this.o.log.warn({ link: this.o.linkName }, 'retained Sparkplug NCMD ignored');
      return;
    }
    let rebirth = false;
    try {
      rebirth = SparkplugSession.isRebirthRequest(payload);
    } catch (err) {
      this.o.log.warn({ link: this.o.linkName, err: (err as Error).message }, 'undecodable Sparkplug NCMD ignored');
      return;
    }
    if (!rebirth || !this.connected) return;
    this.o.log.info({ link: this.o.linkName }, 'Sparkplug rebirth requested');
    // Requests that arrive before the births went out are answered by those births: one sequence, not one each.
    if (this.rebirthWanted) return;
    this.rebirthWanted = true;
    this.run(this.generation, async () => []).catch((err: Error) =>
      this.o.log.warn({ link: this.o.linkName, err: err.message }, 'Sparkplug rebirth not published'),
    );
  }

  private async births(): Promise<SparkplugMessage[]> {
    if (this.o.current) this.session.learn(await this.o.current());
    return this.session.birth();
  }

  /** One job in the queue: builds its messages when its turn comes, publishes them at QoS 0, then waits for the fence. */
  private run(generation: number, build: () => Promise<SparkplugMessage[]>): Promise<number> {
    const previous = this.turn;
    let release!: () => void;
    this.turn = new Promise<void>((r) => (release = r));
    return (async () => {
      let delivered: Array<Promise<void>> = [];
      let bytes = 0;
      try {
        await previous;
        this.checkConnection(generation);
        const list: SparkplugMessage[] = [];
        if (this.rebirthWanted) {
          this.rebirthWanted = false;
          list.push(...(await this.births()));
        }
        try {
          list.push(...(await build()));
        } catch (err) {
          // The session may have counted seq numbers for messages that never go out: start over with a birth.
          this.rebirthWanted = true;
          throw err;
        }
        const client = this.checkConnection(generation);
        delivered = list.map((m) => this.settled(`publish ${m.kind}`, (cb) => client.publish(m.topic, m.payload, { qos: 0, retain: false }, cb)));
        delivered.push(this.settled('UNSUBACK', (cb) => client.unsubscribe(this.fence, cb)));
        bytes = list.reduce((n, m) => n + m.payload.length, 0);
      } finally {
        release();
      }
      await Promise.all(delivered);
      return bytes;
    })();
  }

  private checkConnection(generation: number): MqttClient {
    const client = this.client;
    if (!client || generation !== this.generation || !this.connected) throw new OutpostError('SYNC_LINK_DOWN', `link ${this.o.linkName} is not connected`);
    return client;
  }

  /** Wraps an MQTT.js callback: settles once, fails on timeout or when the connection closes. */
  private settled(what: string, start: (cb: (err?: Error) => void) => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let done = false;
      const settle = (err?: OutpostError): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.pending.delete(settle);
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(
        () => settle(new OutpostError('SYNC_ACK_TIMEOUT', `no ${what} from ${this.o.linkName} within ${this.o.ackTimeoutMs} ms`)),
        this.o.ackTimeoutMs,
      );
      this.pending.add(settle);
      start((err) => settle(err ? new OutpostError('SYNC_LINK_DOWN', `${what} to ${this.o.linkName} failed: ${err.message}`, { cause: err }) : undefined));
    });
  }

  private failPending(err: OutpostError): void {
    for (const settle of [...this.pending]) settle(err);
  }
}

/** Current values from storage: the newest reading of every defined datapoint that has one. */
export function storeCurrentValues(store: Pick<Store, 'listDatapoints' | 'latest'>): CurrentValues {
  return async () => {
    const out: PointRecord[] = [];
    for (const dp of await store.listDatapoints()) {
      const latest = store.latest(dp.id);
      if (latest) out.push({ id: dp.id, t: latest.t, v: latest.v });
    }
    return out;
  };
}
