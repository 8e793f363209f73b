import type { OcppOptions } from './config.js';
import { parseOcppTime } from './codec.js';

export type AuthorizationStatus = 'Accepted' | 'Blocked' | 'Expired' | 'Invalid' | 'ConcurrentTx';

export interface IdTagInfo {
  status: AuthorizationStatus;
  expiryDate?: string;
  parentIdTag?: string;
}

/**
 * Local authorization list (OCPP 1.6 §3.5.3): decided on site, so charging keeps working
 * with no upstream. id tags compare case-insensitively (IdToken is a CiString20, §7.28).
 * The block list wins over everything.
 */
export function authorizeIdTag(list: OcppOptions['idTags'], idTag: string, now: number): IdTagInfo {
  const tag = idTag.toLowerCase();
  if (list.block.some((b) => b.toLowerCase() === tag)) return { status: 'Blocked' };
  for (const entry of list.allow) {
    const e = typeof entry === 'string' ? { idTag: entry } : entry;
    if (e.idTag.toLowerCase() !== tag) continue;
    const expiry = 'expiryDate' in e && e.expiryDate ? parseOcppTime(e.expiryDate) : undefined;
    if (expiry !== undefined && expiry <= now) return { status: 'Expired' };
    return {
      status: 'Accepted',
      ...(expiry !== undefined ? { expiryDate: new Date(expiry).toISOString() } : {}),
      ...('parentIdTag' in e && e.parentIdTag ? { parentIdTag: e.parentIdTag } : {}),
    };
  }
  return { status: list.acceptUnknown ? 'Accepted' : 'Invalid' };
}
