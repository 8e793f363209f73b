import http from 'node:http';
import https from 'node:https';
import { OutpostError, type ErrorCode } from '../../core/errors.js';
import { inflateBounded } from '../http/body.js';
import { decodeIngestBatch } from './batch-scan.js';
import { GATEWAY_HEADER, LANE_HEADER, VIA_HEADER, parseJson } from './http-ingest.js';
import type { MqttMessageHandler } from './mqtt.js';
import type { CheckedIngest, IngestService } from './service.js';
import '../errors.js';

/** Commits what the receiver takes into this process's store (`database: level`). */
export function localHandler(service: IngestService, maxBatchBytes: number): MqttMessageHandler {
  return {
    async data(gateway, _lane, payload) {
      // The lane is the batch's own (`lane`); the topic (`data`, `live`) only routes it.
      await service.commit(checked(service, gateway, await inflateBounded(payload, maxBatchBytes)));
    },
    async status(gateway, payload) {
      await service.status(gateway, parseJson(payload), 'mqtt');
    },
  };
}

/** The message decoded and checked, in a frame of its own: its JSON is not kept through the commit. */
function checked(service: IngestService, gateway: string, body: Buffer): CheckedIngest {
  let batch: ReturnType<typeof decodeIngestBatch>;
  try {
    batch = decodeIngestBatch(body);
  } catch (err) {
    if (err instanceof OutpostError && err.code !== 'VALUE_MALFORMED') throw err;
    throw new OutpostError('CENTRAL_BATCH_INVALID', (err as Error).message, { cause: err });
  }
  return service.check(gateway, batch, 'mqtt', false);
}

export interface ForwardOptions {
  /** The central that owns the store (`database: http(s)://…`). */
  url: string;
  token: string;
  timeoutMs?: number;
}

/**
 * A receiver without a store of its own (`database: http(s)://<central>`): it forwards each
 * message as it came to the owning central's `POST /api/ingest/batch` with a receiver token,
 * the topic's gateway (`x-outpost-gateway`) and `x-outpost-via: mqtt` (bad records left out, as
 * for MQTT), and resolves only on its 2xx — after that central committed — so the PUBACK means
 * stored there. 4xx other than 408/429 is a refusal for good (acknowledged and counted);
 * anything else (5xx, 429, no answer) is retried through redelivery.
 */
export function forwardingHandler(o: ForwardOptions): MqttMessageHandler & { close(): void } {
  const target = new URL('/api/ingest/batch', o.url);
  const lib = target.protocol === 'https:' ? https : http;
  const agent = new lib.Agent({ keepAlive: true, maxSockets: 16 });
  const post = (gateway: string, body: Buffer, headers: Record<string, string>): Promise<void> =>
    new Promise((resolve, reject) => {
      const req = lib.request(
        target,
        {
          method: 'POST',
          agent,
          timeout: o.timeoutMs ?? 30_000,
          headers: {
            authorization: `Bearer ${o.token}`,
            [GATEWAY_HEADER]: gateway,
            [VIA_HEADER]: 'mqtt',
            'content-length': String(body.length),
            ...headers,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            if (size < 4096) chunks.push(c);
            size += c.length;
          });
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) return resolve();
            const answer = Buffer.concat(chunks).toString('utf8').slice(0, 500);
            const code = (() => {
              try {
                return (JSON.parse(answer) as { error?: { code?: string } }).error?.code;
              } catch {
                return undefined;
              }
            })();
            if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
              // Refused for good by the owner: its code passed on when it is one of ours and final.
              const message = `the owning central refused it: HTTP ${status} ${answer}`;
              const same = code ? new OutpostError(code as ErrorCode, message) : undefined;
              reject(same && same.status < 500 && !same.retryable ? same : new OutpostError('CENTRAL_BATCH_INVALID', message));
              return;
            }
            reject(new OutpostError('CENTRAL_FORWARD_FAILED', `the owning central answered HTTP ${status} ${answer}`.trim()));
          });
          res.on('error', (err) => reject(new OutpostError('CENTRAL_FORWARD_FAILED', err.message, { cause: err })));
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${o.timeoutMs ?? 30_000} ms`)));
      req.on('error', (err) => reject(new OutpostError('CENTRAL_FORWARD_FAILED', `${target.origin} unreachable: ${err.message}`, { cause: err })));
      req.end(body);
    });
  return {
    data: (gateway, _lane, payload) =>
      post(gateway, payload, {
        'content-type': 'application/json',
        ...(payload[0] === 0x1f && payload[1] === 0x8b ? { 'content-encoding': 'gzip' } : {}),
      }),
    async status(gateway, payload) {
      // Passed on as the HTTP status channel's document: the owner records it with via mqtt.
      const doc = parseJson(payload) as Record<string, unknown>;
      await post(gateway, Buffer.from(JSON.stringify({ ...doc, format: 'outpost-status/1', gw: doc.gatewayId ?? doc.gw ?? gateway })), {
        'content-type': 'application/json',
        [LANE_HEADER]: 'status',
      });
    },
    close: () => agent.destroy(),
  };
}
