import type { IncomingMessage } from 'node:http';
import { gunzip, gunzipSync } from 'node:zlib';
import { promisify } from 'node:util';
import { OutpostError } from '../../core/errors.js';
import '../errors.js';

const gunzipAsync = promisify(gunzip);

/**
 * Bodies up to this size (compressed) are inflated on the event loop: a batch of 100 records
 * is 1–2 KB, inflated in ~20 µs, where the thread pool's round trip costs ~50 µs of CPU
 * (measured, bench/README.md "Central ingest"). Larger ones go to the thread pool.
 */
const INFLATE_INLINE_BYTES = 16 * 1024;

/**
 * The request body as sent, bytes and all (a signature covers the gzip bytes, so no parser may
 * inflate it first), refused with BODY_TOO_LARGE past `limit` before it is all read.
 */
export async function readRawBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > limit)
    throw new OutpostError('BODY_TOO_LARGE', `the body has ${declared} bytes; at most ${limit} (http.maxBodyBytes)`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      req.resume();
      throw new OutpostError('BODY_TOO_LARGE', `the body is larger than ${limit} bytes (http.maxBodyBytes)`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** gzip bytes (RFC 1952 magic 1f 8b) inflated, at most `limit` bytes out (a gzip bomb stops there); anything else as it is. */
export async function inflateBounded(body: Buffer, limit: number): Promise<Buffer> {
  if (body.length < 2 || body[0] !== 0x1f || body[1] !== 0x8b) return body;
  try {
    if (body.length <= INFLATE_INLINE_BYTES) return gunzipSync(body, { maxOutputLength: limit });
    return await gunzipAsync(body, { maxOutputLength: limit });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE')
      throw new OutpostError('BODY_TOO_LARGE', `the batch inflates to more than ${limit} bytes (ingest.http.maxBatchBytes)`);
    throw new OutpostError('CENTRAL_BATCH_INVALID', `the body is not valid gzip: ${(err as Error).message}`, { cause: err });
  }
}
