import { createHmac, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { validateCentralConfig } from '../../central/config.js';
import { hashToken } from '../../central/gateways.js';
import { createCentralLogger } from '../../central/log.js';
import { startCentral, type Central } from '../../central/main.js';
import { tempDir, type Teardown } from '../helpers/teardown.js';

/** An API answer as a test reads it, field by field (the OpenAPI description has the shapes). */
// biome-ignore lint/suspicious/noExplicitAny: tests read JSON answers field by field
export type JsonBody = any;

/** The API token of every test central (its hash is in `http.tokens`). */
export const API_TOKEN = 'central-test-api-token-0123456789abcdef';
export const API_TOKEN_HASH = hashToken(API_TOKEN);

export interface TestCentral extends Central {
  dataDir: string;
  logs: Array<Record<string, unknown>>;
  /** GET an API path with the test token; the parsed JSON and the status. */
  get(path: string): Promise<{ status: number; body: JsonBody }>;
}

/**
 * A real Outpost Central in this process (`startCentral`, what `outpost central` runs), on a
 * free loopback port with its store in a temp dir. `config` is raw, as in central.yaml.
 */
export async function startTestCentral(t: Teardown, config: Record<string, unknown> = {}, options: { dataDir?: string } = {}): Promise<TestCentral> {
  const dataDir = options.dataDir ?? (await tempDir(t, 'outpost-central-'));
  const raw = { dataDir, log: { level: 'debug' }, ...config, http: { host: '127.0.0.1', port: 0, tokens: [API_TOKEN_HASH], ...(config.http as object) } };
  const cfg = validateCentralConfig(raw);
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line));
      cb();
    },
  });
  const central = await startCentral(cfg, { version: 'test', log: createCentralLogger({ level: 'debug', pretty: false, destination: sink }) });
  t.teardown(() => central.stop());
  return {
    ...central,
    dataDir,
    logs,
    async get(path) {
      const res = await fetch(central.url + path, { headers: { authorization: `Bearer ${API_TOKEN}` } });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    },
  };
}

/** Headers of the gateway's HMAC scheme for `signed` (runtime/sync/http-link.ts `signBody`). */
export function hmacHeaders(secret: string, signed: Buffer, at = Date.now()): Record<string, string> {
  const ts = String(Math.floor(at / 1000));
  return { 'x-outpost-timestamp': ts, 'x-outpost-signature': 'sha256=' + createHmac('sha256', secret).update(ts).update('.').update(signed).digest('hex') };
}

/** An RSA key pair standing in for Rock7's, the public half written as PEM for the config. */
export async function rock7Keys(t: Teardown): Promise<{ privateKey: KeyObject; publicKeyFile: string; otherPrivateKey: KeyObject }> {
  const dir = await tempDir(t, 'outpost-rock7-');
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const publicKeyFile = join(dir, 'rock7.pem');
  await writeFile(publicKeyFile, publicKey.export({ type: 'spki', format: 'pem' }));
  return { privateKey, publicKeyFile, otherPrivateKey: other.privateKey };
}

/** A compact JWS as Rock7 makes it: RS256 over the fields as string claims, `iss` and `iat` added. */
export function rock7Jwt(privateKey: KeyObject, fields: Record<string, string>, header: Record<string, unknown> = { alg: 'RS256' }): string {
  const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${b64(header)}.${b64({ iss: 'Rock 7', iat: Math.floor(Date.now() / 1000), ...fields })}`;
  return `${input}.${sign('RSA-SHA256', Buffer.from(input), privateKey).toString('base64url')}`;
}

/** `YY-MM-DD HH:MM:SS` in UTC, as RockBLOCK's `transmit_time`. */
export function transmitTime(ms: number): string {
  return new Date(ms).toISOString().slice(2, 19).replace('T', ' ');
}

/** POSTs a RockBLOCK delivery as the Rock7 cloud does (a form), optionally signed. */
export async function postRockblock(url: string, fields: Record<string, string>, jwtKey?: KeyObject): Promise<{ status: number; body: JsonBody }> {
  const form = new URLSearchParams(fields);
  if (jwtKey) form.set('JWT', rock7Jwt(jwtKey, fields));
  const res = await fetch(`${url}/api/ingest/rockblock`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: form.toString(),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}
