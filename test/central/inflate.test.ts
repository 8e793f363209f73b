/**
 * inflateBounded (central/http/body.ts), on both sides of the size up to which it inflates on
 * the event loop: the same answers inline and in the thread pool — the body as sent, gzip
 * inflated, a bomb stopped at the limit, broken gzip refused.
 */
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import t from 'tap';
import { isOutpostError } from '../../core/errors.js';
import { inflateBounded } from '../../central/http/body.js';

const LIMIT = 1024 * 1024;

for (const [size, label] of [
  [2_000, 'a small body (inflated inline)'],
  [200_000, 'a large body (inflated in the thread pool)'],
] as const) {
  t.test(label, async (t) => {
    // Random hex: gzip halves it, so the compressed size stays on this side of the threshold.
    const text = Buffer.from(randomBytes(size / 2).toString('hex'));
    const gz = gzipSync(text);
    t.ok(size < 10_000 ? gz.length <= 16 * 1024 : gz.length > 16 * 1024, `compressed to ${gz.length} bytes`);
    t.same(await inflateBounded(gz, LIMIT), text, 'inflated as it was');
    t.same(await inflateBounded(text, LIMIT), text, 'a body that is not gzip is taken as it is');

    const bomb = gzipSync(Buffer.concat([text, Buffer.alloc(LIMIT * 4)]));
    const small = await inflateBounded(bomb, LIMIT).catch((err: unknown) => err);
    t.ok(isOutpostError(small, 'BODY_TOO_LARGE'), `a body inflating past the limit: BODY_TOO_LARGE (${bomb.length} bytes of gzip)`, { found: small });

    const broken = Buffer.from(gz);
    broken.fill(0xff, 10, Math.min(gz.length - 8, 400));
    const refused = await inflateBounded(broken, LIMIT).catch((err: unknown) => err);
    t.ok(isOutpostError(refused, 'CENTRAL_BATCH_INVALID'), 'broken gzip: CENTRAL_BATCH_INVALID', { found: refused });
    t.match((refused as Error).message, /not valid gzip/);
  });
}
