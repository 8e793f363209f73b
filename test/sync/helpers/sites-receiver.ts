import mqtt, { type MqttClient, type IClientOptions } from 'mqtt';
import { decodeBatch, wireRecords, SeqDeduper, type WireBatch } from '../../../runtime/sync/codec.js';

/** What the central side stored for one gateway. */
export interface SiteTally {
  /** Records stored after dedupe by (gateway id, seq). */
  accepted: number;
  /** Records dropped as already stored (resends after a reconnect, live lane repeats). */
  duplicates: number;
  messages: number;
  payloadBytes: number;
  /** Distinct idempotency keys seen, and how many batches came again under a key already seen. */
  distinctKeys: number;
  repeatedKeys: number;
  /** Batches whose key or `gw` did not name the gateway of their topic (must stay 0). */
  foreignKeys: number;
  /** Sequence ranges stored, merged: `[[1, N]]` when every record 1..N arrived. */
  ranges: Array<[number, number]>;
  /** Records arriving out of order for their datapoint after dedupe (must stay 0 on `data`). */
  outOfOrder: number;
  /** Epoch ms of the first and the latest message that stored something new. */
  firstAt: number;
  lastAt: number;
  /** Epoch ms when every seq 1..`prefixTarget` had been stored (0: not yet). */
  prefixAt: number;
}

interface SiteState {
  tally: Omit<SiteTally, 'ranges' | 'distinctKeys'>;
  keys: Set<string>;
  lastSeqById: Map<string, number>;
  payloads: Buffer[];
}

/**
 * The central side of a fleet as a test or bench sees it: one MQTT client subscribed to
 * `sites/+/data`, decoding every batch and storing each record once per
 * (gateway id, seq) with the codec's `SeqDeduper`, as a real receiver would.
 * `capture` keeps the raw payloads (to replay the very same bytes as a peer).
 */
export class SitesReceiver {
  readonly dedupe = new SeqDeduper();
  private readonly sites = new Map<string, SiteState>();
  /** Latency samples (receive time − record t, ms) for records with t ≥ `latencyFrom`. */
  latencyFrom = Number.POSITIVE_INFINITY;
  readonly latencies: number[] = [];
  capture = false;
  /** Sets `prefixAt` of a gateway once seq 1..prefixTarget all arrived (the backlog of a bench). */
  prefixTarget = Number.POSITIVE_INFINITY;
  /** Messages on topics the receiver does not understand, or payloads it could not decode. */
  malformed = 0;
  /** Peer traffic (`peer/+/data`): counted, decoded, not deduped. */
  peerRecords = 0;
  peerMessages = 0;
  peerLastAt = 0;

  private constructor(readonly client: MqttClient) {}

  static async connect(url: string, options: IClientOptions = {}, topics = ['sites/+/data']): Promise<SitesReceiver> {
    const client = await mqtt.connectAsync(url, {
      clientId: `sites-receiver-${Math.random().toString(16).slice(2)}`,
      clean: true,
      reconnectPeriod: 200,
      ...options,
    });
    const r = new SitesReceiver(client);
    client.on('message', (topic, payload) => r.onMessage(topic, payload));
    // After a broker restart a clean session has no subscriptions: subscribe again.
    client.on('connect', (ack) => {
      if (!ack.sessionPresent) void client.subscribeAsync(topics, { qos: 1 }).catch(() => undefined);
    });
    await client.subscribeAsync(topics, { qos: 1 });
    return r;
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }

  gateways(): string[] {
    return [...this.sites.keys()].sort();
  }

  tally(gatewayId: string): SiteTally {
    const s = this.sites.get(gatewayId);
    if (!s)
      return {
        accepted: 0,
        duplicates: 0,
        messages: 0,
        payloadBytes: 0,
        distinctKeys: 0,
        repeatedKeys: 0,
        foreignKeys: 0,
        ranges: [],
        outOfOrder: 0,
        firstAt: 0,
        lastAt: 0,
        prefixAt: 0,
      };
    return { ...s.tally, distinctKeys: s.keys.size, ranges: this.dedupe.ranges(gatewayId).map(([a, b]) => [a, b]) };
  }

  /** Every idempotency key seen for the gateway (to check keys never collide across gateways). */
  keys(gatewayId: string): ReadonlySet<string> {
    return this.sites.get(gatewayId)?.keys ?? new Set();
  }

  /** Captured payloads of a gateway, in arrival order; the capture is handed over and cleared. */
  takePayloads(gatewayId: string): Buffer[] {
    const s = this.sites.get(gatewayId);
    if (!s) return [];
    const out = s.payloads;
    s.payloads = [];
    return out;
  }

  private site(gatewayId: string): SiteState {
    let s = this.sites.get(gatewayId);
    if (!s) {
      s = {
        tally: { accepted: 0, duplicates: 0, messages: 0, payloadBytes: 0, repeatedKeys: 0, foreignKeys: 0, outOfOrder: 0, firstAt: 0, lastAt: 0, prefixAt: 0 },
        keys: new Set(),
        lastSeqById: new Map(),
        payloads: [],
      };
      this.sites.set(gatewayId, s);
    }
    return s;
  }

  private onMessage(topic: string, payload: Buffer): void {
    const now = Date.now();
    const [root, gatewayId, leaf] = topic.split('/');
    if (gatewayId === undefined || leaf !== 'data') {
      this.malformed++;
      return;
    }
    let batch: WireBatch;
    try {
      batch = decodeBatch(payload);
    } catch {
      // Counted, and the bench/test asserts the count is 0.
      this.malformed++;
      return;
    }
    const records = wireRecords(batch);
    if (root === 'peer') {
      this.peerMessages++;
      this.peerRecords += records.length;
      this.peerLastAt = now;
      return;
    }
    const s = this.site(gatewayId);
    s.tally.messages++;
    s.tally.payloadBytes += payload.length;
    if (this.capture) s.payloads.push(payload);
    if (batch.gw !== gatewayId || !batch.key.startsWith(`${gatewayId}:`)) s.tally.foreignKeys++;
    if (s.keys.has(batch.key)) s.tally.repeatedKeys++;
    else s.keys.add(batch.key);
    const fresh = this.dedupe.accept(gatewayId, records);
    s.tally.duplicates += records.length - fresh.length;
    if (fresh.length === 0) return;
    s.tally.accepted += fresh.length;
    if (s.tally.firstAt === 0) s.tally.firstAt = now;
    s.tally.lastAt = now;
    if (s.tally.prefixAt === 0) {
      const first = this.dedupe.ranges(gatewayId)[0];
      if (first && first[0] === 1 && first[1] >= this.prefixTarget) s.tally.prefixAt = now;
    }
    for (const r of fresh) {
      const prev = s.lastSeqById.get(r.id);
      if (prev !== undefined && r.seq < prev) s.tally.outOfOrder++;
      s.lastSeqById.set(r.id, r.seq);
      if (r.t >= this.latencyFrom && this.latencies.length < 1_000_000) this.latencies.push(now - r.t);
    }
  }
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
