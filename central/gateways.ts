import { createHash, timingSafeEqual } from 'node:crypto';
import { OutpostError } from '../core/errors.js';
import { MoCodec, type CodecTable } from '../adapters/iridium/codec.js';
import { readSecretFile, type CentralConfig, type GatewayConfig } from './config.js';
import './errors.js';

/** A configured gateway with what its config names loaded: the HMAC secret, the satellite codec. */
export interface GatewayEntry {
  readonly config: GatewayConfig;
  readonly id: string;
  /** `auth.type: hmac`: the link's secret. */
  readonly hmacSecret?: string;
  /** `auth.type: bearer`: the sha256 hash of the link's token. */
  readonly tokenHash?: string;
  /** The Iridium codec with the gateway's datapoint table (the wire contract). */
  readonly codec?: MoCodec;
}

/** `sha256:<hex>` of a token, as `outpost hash-token` prints it (runtime/auth/passwords.ts). */
export function hashToken(token: string): string {
  return 'sha256:' + createHash('sha256').update(token).digest('hex');
}

/** Whether `token` hashes to one of `hashes`, compared in constant time. */
export function tokenMatches(token: string, hashes: readonly string[]): boolean {
  const h = Buffer.from(hashToken(token));
  let match = false;
  for (const candidate of hashes) if (candidate.length === h.length && timingSafeEqual(Buffer.from(candidate), h)) match = true;
  return match;
}

/**
 * The gateways this central takes data from (`gateways:` in central.yaml), looked up by id
 * (batches, status, the poll downlink) and by IMEI (the RockBLOCK webhook). A gateway not
 * listed is refused on every path (CENTRAL_GATEWAY_UNKNOWN), so a typo in a site's id or a
 * stranger with broker access does not create data under a new name.
 */
export class GatewayDirectory {
  private readonly byId = new Map<string, GatewayEntry>();
  private readonly byImei = new Map<string, GatewayEntry>();

  private constructor(entries: GatewayEntry[]) {
    for (const e of entries) {
      this.byId.set(e.id, e);
      if (e.config.iridium) this.byImei.set(e.config.iridium.imei, e);
    }
  }

  /** Loads secret files and builds each codec: a file that cannot be read, or a bad table, is a config error. */
  static async load(config: Pick<CentralConfig, 'gateways'>): Promise<GatewayDirectory> {
    const entries: GatewayEntry[] = [];
    for (const [i, g] of config.gateways.entries()) {
      let hmacSecret: string | undefined;
      if (g.auth?.type === 'hmac') {
        hmacSecret = g.auth.secret ?? (await readSecretFile(g.auth.secretFile!, `gateways.${i}.auth.secretFile`));
        if (hmacSecret.length < 16) throw new OutpostError('CONFIG_INVALID', `gateways.${i}.auth.secretFile: the secret has fewer than 16 characters`);
      }
      let codec: MoCodec | undefined;
      if (g.iridium) {
        const table: CodecTable = {
          timeResolutionMs: g.iridium.timeResolutionMs,
          datapoints: g.iridium.datapoints.map((d) => ({ id: d.id, decimals: d.decimals, type: d.type })),
        };
        try {
          codec = new MoCodec(table);
        } catch (err) {
          throw new OutpostError('CONFIG_INVALID', `gateways.${i}.iridium: ${(err as Error).message}`, { cause: err });
        }
      }
      entries.push({
        config: g,
        id: g.id,
        ...(hmacSecret !== undefined ? { hmacSecret } : {}),
        ...(g.auth?.type === 'bearer' ? { tokenHash: g.auth.tokenHash } : {}),
        ...(codec ? { codec } : {}),
      });
    }
    return new GatewayDirectory(entries);
  }

  get(id: string): GatewayEntry | undefined {
    return this.byId.get(id);
  }

  /** The gateway or CENTRAL_GATEWAY_UNKNOWN naming it. */
  require(id: string): GatewayEntry {
    const entry = this.byId.get(id);
    if (!entry)
      throw new OutpostError(
        'CENTRAL_GATEWAY_UNKNOWN',
        `gateway "${id.slice(0, 64)}" is not configured on this central (add it under gateways: in central.yaml)`,
      );
    return entry;
  }

  byModem(imei: string): GatewayEntry | undefined {
    return this.byImei.get(imei);
  }

  list(): GatewayEntry[] {
    return [...this.byId.values()];
  }

  get size(): number {
    return this.byId.size;
  }
}
