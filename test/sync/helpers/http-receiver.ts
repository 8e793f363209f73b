import { createServer, type IncomingMessage } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { decodeBatch, wireRecords, SeqDeduper, type WireBatch } from '../../../runtime/sync/codec.js';
import type { OutboxRecord } from '../../../storage/store.js';
import type { Teardown } from '../../helpers/teardown.js';

export interface HttpRequestSeen {
  at: number;
  status: number;
  key: string | undefined;
  lane: string | undefined;
  first: number;
  last: number;
  count: number;
}

export interface HttpAnswer {
  status: number;
  body?: string;
  headers?: Record<string, string>;
  /** Answer after this long (a slow receiver). */
  delayMs?: number;
}

/**
 * The central HTTP ingest as a test sees it: a real server on loopback that decodes
 * every POSTed batch, lets `decide` answer it, and stores accepted records once per
 * (gateway, seq) like a real receiver. Every request is kept with its idempotency key.
 */
export class HttpReceiver {
  readonly dedupe = new SeqDeduper();
  readonly records: OutboxRecord[] = [];
  readonly requests: HttpRequestSeen[] = [];
  duplicates = 0;
  url = '';

  private constructor(private decide: (batch: WireBatch, req: IncomingMessage, n: number) => HttpAnswer) {}

  static async start(t: Teardown, decide: (batch: WireBatch, req: IncomingMessage, n: number) => HttpAnswer = () => ({ status: 200 })): Promise<HttpReceiver> {
    const r = new HttpReceiver(decide);
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const batch = decodeBatch(gunzipSync(Buffer.concat(chunks)));
        const answer = r.decide(batch, req, r.requests.length);
        r.requests.push({
          at: Date.now(),
          status: answer.status,
          key: req.headers['idempotency-key'] as string | undefined,
          lane: req.headers['x-outpost-lane'] as string | undefined,
          first: batch.first,
          last: batch.last,
          count: batch.records.length,
        });
        if (answer.status >= 200 && answer.status < 300 && batch.lane === 'history') {
          const records = wireRecords(batch);
          const fresh = r.dedupe.accept(batch.gw, records);
          r.duplicates += records.length - fresh.length;
          r.records.push(...fresh);
        }
        const send = (): void =>
          void res
            .writeHead(answer.status, { 'content-type': 'text/plain', ...answer.headers })
            .end(answer.body ?? (answer.status < 300 ? 'stored' : 'refused'));
        if (answer.delayMs) setTimeout(send, answer.delayMs);
        else send();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    t.teardown(
      () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    );
    r.url = `http://127.0.0.1:${(server.address() as { port: number }).port}/ingest`;
    return r;
  }

  /** Changes how the receiver answers from now on. */
  answer(decide: (batch: WireBatch, req: IncomingMessage, n: number) => HttpAnswer): void {
    this.decide = decide;
  }
}
