import { readFile } from 'node:fs/promises';
import { createHmac } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { OutpostError } from '../../core/errors.js';
import './errors.js';
import type { Logger } from '../log.js';
import type { Clock } from '../../core/clock.js';
import type { HttpLinkConfig } from './config.js';
import { LinkBase, type Batch, type Link, type StorageReport } from './link.js';
import { HttpStatusReporter } from './http-status.js';
import { encodeBatch } from './codec.js';
import { HttpDownlinkPoller, type HttpReply } from './http-downlink.js';
import { ANSWER_CHARS } from './dead-letter.js';

export interface HttpLinkOptions {
  config: HttpLinkConfig;
  gatewayId: string;
  log: Logger;
  clock: Clock;
  /** Folder for the durable downlink poll state (`<dataDir>/sync`); the poll downlink needs it. */
  stateDir?: string;
  random?: () => number;
}

/**
 * 4xx answers about the request itself rather than its records: unauthorised, forbidden,
 * no such endpoint, method not allowed, proxy authentication.
 */
const LINK_REFUSALS = new Set([401, 403, 404, 405, 407]);

/** Headers of the HMAC scheme: signature over `<timestamp>.<body>` so a captured request cannot be replayed later with a new time. */
export const SIGNATURE_HEADER = 'x-outpost-signature';
export const TIMESTAMP_HEADER = 'x-outpost-timestamp';

export function signBody(secret: string, timestamp: string, body: Buffer): string {
  return 'sha256=' + createHmac('sha256', secret).update(timestamp).update('.').update(body).digest('hex');
}

/**
 * `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date. Undefined when
 * absent or unparseable.
 */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * HTTP(S) link: POSTs each batch as gzip'd JSON with `Idempotency-Key`; any 2xx is
 * the acknowledgement. 429/503 are honoured with `Retry-After`; 5xx, 408 and transport
 * errors are retried after backoff; 401/403/404/405/407 mean the link is misconfigured;
 * any other 4xx refuses the batch's records (`SYNC_REJECTED`, with the receiver's answer),
 * which the drain isolates. Connectionless: while down, the next batch (after backoff) is the probe.
 */
export class HttpLink extends LinkBase implements Link {
  readonly name: string;
  readonly role: Link['role'];
  readonly maxBatchRecords: number;
  readonly connectionless = true;
  private failures = 0;
  private agent: http.Agent | undefined;
  private credential: string | undefined;
  private readonly url: URL;
  private poller: HttpDownlinkPoller | undefined;
  private status: HttpStatusReporter | undefined;
  /** The last storage state reported, sent once the link starts when it is not ok. */
  private storage: StorageReport | undefined;

  constructor(private readonly o: HttpLinkOptions) {
    super();
    this.name = o.config.name;
    this.role = o.config.role;
    this.maxBatchRecords = o.config.batchRecords;
    this.url = new URL(o.config.url);
  }

  async start(): Promise<void> {
    const c = this.o.config;
    const auth = c.auth;
    if (auth.type === 'bearer') this.credential = auth.token ?? (auth.tokenFile ? (await read(auth.tokenFile, 'auth.tokenFile')).trim() : undefined);
    if (auth.type === 'hmac') this.credential = auth.secret ?? (auth.secretFile ? (await read(auth.secretFile, 'auth.secretFile')).trim() : undefined);
    if (auth.type !== 'none' && !this.credential)
      throw new OutpostError(
        'SYNC_CONFIG',
        `link ${this.name}: auth.${auth.type} needs a ${auth.type === 'bearer' ? 'token or tokenFile' : 'secret or secretFile'}`,
      );
    if (this.url.protocol === 'https:') {
      this.agent = new https.Agent({
        keepAlive: true,
        maxSockets: c.window,
        ca: c.tls?.caFile ? await read(c.tls.caFile, 'tls.caFile') : undefined,
        cert: c.tls?.certFile ? await read(c.tls.certFile, 'tls.certFile') : undefined,
        key: c.tls?.keyFile ? await read(c.tls.keyFile, 'tls.keyFile') : undefined,
        rejectUnauthorized: c.tls?.rejectUnauthorized ?? true,
        servername: c.tls?.servername,
      });
    } else {
      this.agent = new http.Agent({ keepAlive: true, maxSockets: c.window });
    }
    // No connection to hold: optimistic until a request fails.
    this.setState('up');
    this.status = new HttpStatusReporter({
      linkName: this.name,
      gatewayId: this.o.gatewayId,
      post: (body) => this.request('POST', this.url, body, 'status'),
      log: this.o.log,
    });
    if (this.storage && this.storage.state !== 'ok') this.status.report(this.storage);
    if (c.downlink) {
      if (!this.o.stateDir) throw new OutpostError('SYNC_CONFIG', `link ${this.name}: the poll downlink needs a state folder for its durable cursor`);
      this.poller = new HttpDownlinkPoller({
        linkName: this.name,
        gatewayId: this.o.gatewayId,
        url: c.downlink.url ?? c.url,
        intervalMs: c.downlink.intervalMs,
        limit: c.downlink.limit,
        maxBackoffMs: c.downlink.maxBackoffMs,
        applyTimeoutMs: c.ackTimeoutMs,
        stateDir: this.o.stateDir,
        request: (method, url, body) => this.request(method, url, body),
        apply: (cmd) =>
          new Promise((resolve, reject) => {
            // The service applies it (Downlink.handle) and hands the ack back through `reply`.
            if (!this.emit('command', { ...cmd, reply: resolve }))
              reject(new OutpostError('SYNC_LINK_DOWN', `link ${this.name}: nobody takes downlink commands`));
          }),
        log: this.o.log,
        random: this.o.random,
      });
      await this.poller.start();
    }
  }

  /** The poll downlink's position and counters (undefined without `downlink`). */
  get downlinkPoll(): { cursor: string | null; lastError: string | undefined; counts: HttpDownlinkPoller['counts'] } | undefined {
    const p = this.poller;
    return p && { cursor: p.cursor, lastError: p.lastError, counts: { ...p.counts } };
  }

  /**
   * A signed request of the poll downlink. Same credentials as the batches: bearer, or
   * HMAC over `<timestamp>.<body>`; a GET has no body, so it signs `<timestamp>.GET <path?query>`
   * (a captured signature is not valid for another cursor).
   */
  private async request(method: 'GET' | 'POST', url: URL, body: Buffer | undefined, lane?: string): Promise<HttpReply> {
    if (!this.agent) throw new OutpostError('SYNC_LINK_DOWN', `link ${this.name} is stopped`);
    const headers: Record<string, string> = { 'x-outpost-gateway': this.o.gatewayId, accept: 'application/json' };
    if (lane) headers['x-outpost-lane'] = lane;
    if (body) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(body.length);
    }
    const auth = this.o.config.auth;
    if (auth.type === 'bearer') headers.authorization = `Bearer ${this.credential}`;
    if (auth.type === 'hmac') {
      const ts = String(Math.floor(this.o.clock.now() / 1000));
      headers[TIMESTAMP_HEADER] = ts;
      headers[SIGNATURE_HEADER] = signBody(this.credential!, ts, body ?? Buffer.from(`GET ${url.pathname}${url.search}`));
    }
    try {
      const res = await this.exchange(method, url, body, headers);
      return { status: res.status, text: res.text, retryAfterMs: parseRetryAfter(res.retryAfter, this.o.clock.now()) };
    } catch (err) {
      throw new OutpostError('SYNC_LINK_DOWN', `${method} ${url.pathname} on ${this.name} failed: ${(err as Error).message}`, { cause: err });
    }
  }

  async stop(): Promise<void> {
    await this.poller?.stop();
    this.poller = undefined;
    await this.status?.stop();
    this.status = undefined;
    this.agent?.destroy();
    this.agent = undefined;
    this.setState('stopped');
  }

  /** Storage went read-only or recovered: a status document goes to the receiver (http-status.ts). */
  reportStorage(storage: StorageReport): void {
    this.storage = storage;
    this.status?.report(storage);
  }

  async send(batch: Batch): Promise<number> {
    if (!this.agent) throw new OutpostError('SYNC_LINK_DOWN', `link ${this.name} is stopped`);
    const body = await encodeBatch(batch, this.o.config.gzipLevel);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'content-encoding': 'gzip',
      'content-length': String(body.length),
      'idempotency-key': batch.key,
      'x-outpost-lane': batch.lane,
    };
    const auth = this.o.config.auth;
    if (auth.type === 'bearer') headers.authorization = `Bearer ${this.credential}`;
    if (auth.type === 'hmac') {
      const ts = String(Math.floor(this.o.clock.now() / 1000));
      headers[TIMESTAMP_HEADER] = ts;
      headers[SIGNATURE_HEADER] = signBody(this.credential!, ts, body);
    }
    let response: { status: number; retryAfter: string | undefined; text: string };
    try {
      response = await this.post(body, headers);
    } catch (err) {
      this.failed((err as Error).message);
      throw new OutpostError('SYNC_LINK_DOWN', `POST to ${this.name} failed: ${(err as Error).message}`, { cause: err });
    }
    const { status } = response;
    if (status >= 200 && status < 300) {
      this.failures = 0;
      this.error = undefined;
      this.setState('up');
      return body.length;
    }
    const snippet = response.text.slice(0, 200);
    const answer = response.text.slice(0, ANSWER_CHARS);
    if (status === 429 || status === 503) {
      const retryAfterMs = parseRetryAfter(response.retryAfter, this.o.clock.now());
      this.error = `HTTP ${status}${retryAfterMs !== undefined ? `, retry after ${retryAfterMs} ms` : ''}`;
      // Throttling is the server working as designed: the link stays up.
      throw new OutpostError('SYNC_THROTTLED', `${this.name}: ${this.error}`, { details: { status, retryAfterMs } });
    }
    // 408: the server gave up waiting for the request, a transport hiccup like a timeout.
    if (status >= 500 || status === 408) {
      this.failed(`HTTP ${status}: ${snippet}`);
      throw new OutpostError('SYNC_LINK_DOWN', `${this.name}: HTTP ${status}`, { details: { status } });
    }
    if (LINK_REFUSALS.has(status)) {
      // Credentials, URL or method: every request would get the same answer whatever it
      // carries, so no record is to blame; the link is down until an operator fixes it.
      this.failed(`HTTP ${status}: ${snippet}`);
      throw new OutpostError('SYNC_LINK_REFUSED', `${this.name} refused the request: HTTP ${status} ${snippet}`, { details: { status, answer } });
    }
    // Any other 4xx is about what the batch carries: the drain splits it to find the record(s).
    this.error = `HTTP ${status}: ${snippet}`;
    throw new OutpostError('SYNC_REJECTED', `${this.name} refused the batch ${batch.key}: HTTP ${status} ${snippet}`, { details: { status, answer } });
  }

  private post(body: Buffer, headers: Record<string, string>): Promise<{ status: number; retryAfter: string | undefined; text: string }> {
    return this.exchange('POST', this.url, body, headers);
  }

  private exchange(
    method: 'GET' | 'POST',
    url: URL,
    body: Buffer | undefined,
    headers: Record<string, string>,
  ): Promise<{ status: number; retryAfter: string | undefined; text: string }> {
    const lib = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = lib.request(url, { method, headers, agent: this.agent, timeout: this.o.config.ackTimeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          // Bounded: a misbehaving server cannot make us buffer a huge error page (a downlink page may be up to 1 MiB).
          if (size < 1024 * 1024) chunks.push(c);
          size += c.length;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`no response within ${this.o.config.ackTimeoutMs} ms`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  private failed(message: string): void {
    this.error = message;
    this.failures++;
    if (this.failures >= this.o.config.downAfterFailures) this.setState('down');
  }
}

async function read(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new OutpostError('SYNC_CONFIG', `${what} ${path} cannot be read: ${(err as Error).message}`, { cause: err });
  }
}
