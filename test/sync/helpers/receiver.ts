import mqtt, { type MqttClient, type IClientOptions } from 'mqtt';
import { decodeBatch, wireRecords, SeqDeduper } from '../../../runtime/sync/codec.js';
import type { OutboxRecord } from '../../../storage/store.js';
import type { Teardown } from '../../helpers/teardown.js';

/**
 * The central side as a test sees it: subscribes to `sites/+/data` and `sites/+/live`
 * on the real broker, decodes the batches and drops duplicates by sequence like a
 * real receiver would.
 */
export class Receiver {
  readonly dedupe = new SeqDeduper();
  /** Accepted history records, in arrival order. */
  readonly records: OutboxRecord[] = [];
  readonly live: OutboxRecord[] = [];
  readonly keys: string[] = [];
  duplicates = 0;
  messages = 0;
  readonly raw: Array<{ topic: string; payload: Buffer }> = [];

  private constructor(readonly client: MqttClient) {}

  static async connect(t: Teardown, url: string, options: IClientOptions = {}, topics = ['sites/+/data', 'sites/+/live']): Promise<Receiver> {
    const client = await mqtt.connectAsync(url, { clientId: `receiver-${Math.random().toString(16).slice(2)}`, clean: true, reconnectPeriod: 200, ...options });
    const r = new Receiver(client);
    t.teardown(() => client.endAsync(true));
    client.on('message', (topic, payload) => r.onMessage(topic, payload));
    client.on('connect', () => void client.subscribeAsync(topics, { qos: 1 }));
    await client.subscribeAsync(topics, { qos: 1 });
    return r;
  }

  private onMessage(topic: string, payload: Buffer): void {
    this.raw.push({ topic, payload });
    if (!topic.endsWith('/data') && !topic.endsWith('/live')) return;
    this.messages++;
    const batch = decodeBatch(payload);
    const records = wireRecords(batch);
    if (topic.endsWith('/live')) {
      this.live.push(...records);
      return;
    }
    this.keys.push(batch.key);
    const fresh = this.dedupe.accept(batch.gw, records);
    this.duplicates += records.length - fresh.length;
    this.records.push(...fresh);
  }
}

/** Checks every datapoint's accepted records arrive in outbox order (= measurement order as written). */
export function inOrderPerDatapoint(records: readonly OutboxRecord[]): string | undefined {
  const last = new Map<string, number>();
  for (const r of records) {
    const prev = last.get(r.id);
    if (prev !== undefined && r.seq < prev) return `${r.id}: seq ${r.seq} arrived after ${prev}`;
    last.set(r.id, r.seq);
  }
  return undefined;
}
