import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { readFile } from 'node:fs/promises';
import { OutpostError } from '../../core/errors.js';
import { readLocalAccess } from './local-access.js';

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']);

export interface ApiCommand {
  dataDir: string;
  method: string;
  /** `/api/...`, `/metrics`: a path on the gateway, never a full URL (the token goes only to our own). */
  path: string;
  /** JSON text sent as the body. */
  body?: string;
}

/**
 * `outpost api GET /api/datapoints`: calls the running gateway as the local admin, with the
 * token from `<dataDir>/auth/local-access.json`. Resolves with the status and the body.
 */
export async function apiCommand(c: ApiCommand): Promise<{ status: number; body: string }> {
  const method = c.method.toUpperCase();
  if (!METHODS.has(method)) throw new OutpostError('BAD_REQUEST', `outpost api: "${c.method}" is not an HTTP method (GET, POST, PUT, PATCH, DELETE)`);
  if (!c.path.startsWith('/')) throw new OutpostError('BAD_REQUEST', `outpost api: give a path on the gateway such as /api/datapoints, not "${c.path}"`);
  if (c.body !== undefined) {
    try {
      JSON.parse(c.body);
    } catch (err) {
      throw new OutpostError('BAD_REQUEST', `outpost api: the body is not valid JSON: ${(err as Error).message}`, { cause: err });
    }
  }
  if (c.path.startsWith('//') || c.path.includes('\\')) throw new OutpostError('BAD_REQUEST', `outpost api: "${c.path}" is not a path on the gateway`);
  const access = await readLocalAccess(c.dataDir);
  const url = new URL(c.path, access.url);
  // The admin token goes to the gateway and nowhere else, however the path is spelled.
  if (url.origin !== new URL(access.url).origin) throw new OutpostError('BAD_REQUEST', `outpost api: "${c.path}" leads away from the gateway (${url.origin})`);
  const headers: Record<string, string> = { authorization: `Bearer ${access.token}`, accept: 'application/json' };
  if (c.body !== undefined) headers['content-type'] = 'application/json';
  const res = await send(url, method, headers, c.body, access.certFile ? await readFile(access.certFile) : undefined);
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return { status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') };
}

function send(url: URL, method: string, headers: Record<string, string>, body: string | undefined, cert: Buffer | undefined): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    // agent: false — one connection, closed after the answer: a kept-alive socket would hold
    // the command open until the server's keep-alive timeout.
    const options = { method, headers, timeout: 30_000, agent: false };
    // Over TLS the gateway's own certificate is the only one trusted: it is pinned, so its
    // name (often a site host name, while we call 127.0.0.1) does not need to match.
    const req =
      url.protocol === 'https:'
        ? httpsRequest(url, { ...options, ca: cert, checkServerIdentity: () => undefined }, resolve)
        : httpRequest(url, options, resolve);
    req.on('timeout', () => req.destroy(new Error('no answer within 30 s')));
    req.on('error', (err) =>
      reject(new OutpostError('GATEWAY_UNREACHABLE', `outpost api: cannot reach the gateway at ${url.origin}: ${err.message}`, { cause: err })),
    );
    req.end(body);
  });
}
