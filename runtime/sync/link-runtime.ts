// A link as the sync service runs it: the link built from its `links:` entry, its drain lane
// and its counters, and the state it shows. Separate from the service (service.ts), which
// decides which link carries what.
import { join } from 'node:path';
import { OutpostError } from '../../core/errors.js';
import './errors.js';
import type { LinkConfig, SyncConfig } from './config.js';
import type { Link, LinkState } from './link.js';
import { MqttLink } from './mqtt-link.js';
import { storeCurrentValues } from './sparkplug-edge.js';
import { HttpLink } from './http-link.js';
import { SatelliteLink } from './satellite-link.js';
import { SatelliteDirectory } from './satellite.js';
import { ByteBucket } from './pacing.js';
import type { Lane } from './scheduler.js';
import type { SyncServiceOptions } from './service.js';
import type { CommandMemory } from './command-memory.js';

export interface LinkRuntime {
  link: Link;
  lane: Lane;
  since: number;
  batches: number;
  records: number;
  bytes: number;
  errors: number;
  /** Why the receiver refuses records for good, while the drain isolates them (the link shows `blocked`). */
  blocked: string | undefined;
}

/** Builds the link of one `links:` entry, with its drain lane and counters at zero. */
export function createLinkRuntime(lc: LinkConfig, o: SyncServiceOptions, config: SyncConfig, commandMemory?: CommandMemory): LinkRuntime {
  const log = o.log;
  let link: Link;
  if (lc.type === 'mqtt')
    link = new MqttLink({
      config: lc,
      gatewayId: o.gatewayId,
      log,
      clock: o.clock,
      stateDir: join(o.dataDir, 'sync'),
      current: storeCurrentValues(o.store),
      downlinkMemory: config.downlinkMemory,
      ...(commandMemory ? { commandMemory } : {}),
    });
  else if (lc.type === 'http')
    link = new HttpLink({ config: lc, gatewayId: o.gatewayId, log, clock: o.clock, stateDir: join(o.dataDir, 'sync'), random: o.random });
  else if (lc.type === 'iridium')
    link = new SatelliteLink({ config: lc, gatewayId: o.gatewayId, log, clock: o.clock, directory: (o.satellites ??= new SatelliteDirectory()) });
  else {
    const custom = o.customLinks?.get(lc.name);
    if (!custom) throw new OutpostError('SYNC_CONFIG', `sync link "${lc.name}" is type custom but no link of that name was supplied`);
    link = custom;
  }
  return {
    link,
    // A satellite link sends one message at a time, cut by its own `fit`.
    lane:
      lc.type === 'iridium'
        ? { link, window: 1, batchRecords: link.maxBatchRecords, bucket: new ByteBucket(lc.maxBytesPerSecond, o.clock) }
        : { link, window: lc.window, batchRecords: lc.batchRecords, bucket: new ByteBucket(lc.maxBytesPerSecond, o.clock) },
    since: o.clock.now(),
    batches: 0,
    records: 0,
    bytes: 0,
    errors: 0,
    blocked: undefined,
  };
}

/** The link's own state, or `blocked` while its receiver refuses records for good (it is reachable). */
export function stateOf(rt: LinkRuntime): LinkState {
  return rt.blocked !== undefined && rt.link.state === 'up' ? 'blocked' : rt.link.state;
}

export function lastErrorOf(rt: LinkRuntime): string | undefined {
  return (rt.blocked !== undefined && rt.link.state === 'up' ? rt.blocked : undefined) ?? rt.link.lastError;
}
