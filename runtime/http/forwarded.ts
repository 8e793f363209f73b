import { BlockList, isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { OutpostError } from '../../core/errors.js';
import { plainAddress } from '../net.js';

/** The request as the client made it, before any trusted reverse proxy. */
export interface ClientView {
  /** The client's address: the socket peer, or what trusted proxies say it was. */
  address: string;
  /** The scheme the client used. */
  proto: 'http' | 'https';
  /** The `Host` the client asked for (with port, as sent). */
  host: string;
  /** The request came through a proxy in `http.trustedProxies`. */
  proxied: boolean;
  /** It carries forwarding headers from a peer that is not trusted: they were ignored. */
  untrustedForwarding: boolean;
}

declare module 'node:http' {
  interface IncomingMessage {
    /** Cached by `ProxyTrust.view`. */
    outpostClient?: ClientView;
  }
}

/**
 * The value our proxy set: the last one. A proxy that appends (or passes a client's own
 * header through unchanged and adds its own) puts what it knows at the end; anything left
 * of it came from the client.
 */
function lastValue(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[header.length - 1] : header;
  const last = value?.split(',').pop()?.trim();
  return last ? last : undefined;
}

const FORWARDING_HEADERS = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded', 'x-real-ip'];

/**
 * `http.trustedProxies` (issue 18): addresses and CIDRs of reverse proxies whose
 * `X-Forwarded-For`, `-Proto` and `-Host` say who the client is. Nobody is trusted by
 * default: a forwarding header from anyone else is ignored, since any client can send one.
 * The client address is the rightmost X-Forwarded-For entry that is not itself a trusted
 * proxy (each proxy appends the peer it saw; only the entries our proxies added are
 * facts, anything left of them is what the client claimed).
 */
export class ProxyTrust {
  private readonly list = new BlockList();
  readonly size: number;

  constructor(entries: readonly string[]) {
    for (const entry of entries) addEntry(this.list, entry);
    this.size = entries.length;
  }

  trusts(address: string | undefined): boolean {
    if (!address || this.size === 0) return false;
    const a = plainAddress(address);
    const family = isIP(a);
    if (family === 0) return false;
    return this.list.check(a, family === 4 ? 'ipv4' : 'ipv6');
  }

  /** Who asked, with what scheme and host; computed once per request. */
  view(req: IncomingMessage): ClientView {
    if (req.outpostClient) return req.outpostClient;
    const peer = plainAddress(req.socket.remoteAddress ?? 'unknown');
    const tls = (req.socket as TLSSocket).encrypted === true;
    const hostHeader = req.headers.host ?? '';
    let view: ClientView;
    if (this.trusts(peer)) {
      const chain = (req.headers['x-forwarded-for'] ?? '')
        .toString()
        .split(',')
        .map((s) => plainAddress(s.trim()))
        .filter((s) => s.length > 0);
      let address = peer;
      for (let i = chain.length - 1; i >= 0; i--) {
        address = chain[i]!;
        if (!this.trusts(address)) break;
      }
      const proto = lastValue(req.headers['x-forwarded-proto'])?.toLowerCase();
      view = {
        address,
        proto: proto === 'https' ? 'https' : proto === 'http' ? 'http' : tls ? 'https' : 'http',
        host: lastValue(req.headers['x-forwarded-host']) ?? hostHeader,
        proxied: true,
        untrustedForwarding: false,
      };
    } else {
      view = {
        address: peer,
        proto: tls ? 'https' : 'http',
        host: hostHeader,
        proxied: false,
        untrustedForwarding: FORWARDING_HEADERS.some((h) => req.headers[h] !== undefined),
      };
    }
    req.outpostClient = view;
    return view;
  }
}

/** `10.0.0.5`, `::1`, `192.168.0.0/16`, `fd00::/8`; anything else is a config error naming the entry. */
function addEntry(list: BlockList, entry: string): void {
  const problem = proxyEntryProblem(entry);
  if (problem) throw new OutpostError('CONFIG_INVALID', `http.trustedProxies: "${entry}" ${problem}`);
  const [address, prefix] = entry.split('/') as [string, string | undefined];
  const type = isIP(address) === 4 ? 'ipv4' : 'ipv6';
  if (prefix === undefined) list.addAddress(address, type);
  else list.addSubnet(address, Number(prefix), type);
}

/** Why a `trustedProxies` entry is not an address or CIDR, or undefined when it is one (used by the config schema). */
export function proxyEntryProblem(entry: string): string | undefined {
  const [address = '', prefix, extra] = entry.split('/');
  const family = isIP(address);
  if (family === 0 || extra !== undefined) return 'is not an IP address or CIDR (e.g. 127.0.0.1, 10.0.0.0/8, ::1)';
  if (prefix === undefined) return undefined;
  const bits = Number(prefix);
  if (!/^\d+$/.test(prefix) || bits > (family === 4 ? 32 : 128)) return `has a prefix length out of range (0–${family === 4 ? 32 : 128})`;
  return undefined;
}
