import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { OutpostError } from '../../core/errors.js';
import '../errors.js';

/** The Rock7 public key (PEM, `ingest.rockblock.jwt.publicKeyFile`), loaded once at start. */
export async function loadPublicKey(path: string): Promise<KeyObject> {
  let pem: string;
  try {
    pem = await readFile(path, 'utf8');
  } catch (err) {
    throw new OutpostError('CONFIG_INVALID', `ingest.rockblock.jwt.publicKeyFile: ${path} cannot be read (${(err as Error).message})`, { cause: err });
  }
  try {
    const key = createPublicKey(pem);
    if (key.asymmetricKeyType !== 'rsa') throw new Error(`an ${key.asymmetricKeyType} key; Rock7 signs with RSA (RS256)`);
    return key;
  } catch (err) {
    throw new OutpostError('CONFIG_INVALID', `ingest.rockblock.jwt.publicKeyFile: ${path} is not an RSA public key in PEM (${(err as Error).message})`, {
      cause: err,
    });
  }
}

/**
 * Verifies a compact JWS signed with RS256 (RFC 7515 §7.1, RFC 7518 §3.3: RSASSA-PKCS1-v1_5
 * with SHA-256 over `<header>.<payload>`) and returns its claims. Only RS256 is taken: a token
 * saying `none` or `HS256` (RFC 8725 §2.1, algorithm confusion) is refused, whatever it carries.
 * Throws CENTRAL_AUTH_FAILED.
 */
export function verifyRs256(token: string, key: KeyObject): Record<string, unknown> {
  const parts = token.split('.');
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]*$/.test(p))) throw fail('the JWT is not three base64url parts');
  const header = json(parts[0]!, 'header');
  if (header.alg !== 'RS256') throw fail(`the JWT is signed with ${JSON.stringify(header.alg)}; only RS256 is taken`);
  const ok = verify('RSA-SHA256', Buffer.from(`${parts[0]}.${parts[1]}`), key, Buffer.from(parts[2]!, 'base64url'));
  if (!ok) throw fail('the JWT signature does not match the Rock7 public key');
  return json(parts[1]!, 'claims');
}

function json(part: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    throw fail(`the JWT ${what} is not JSON`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw fail(`the JWT ${what} is not an object`);
  return value as Record<string, unknown>;
}

function fail(message: string): OutpostError {
  return new OutpostError('CENTRAL_AUTH_FAILED', message);
}
