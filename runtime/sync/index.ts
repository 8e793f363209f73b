export { SyncService, type SyncServiceOptions, type SyncSnapshot, type LinkSnapshot } from './service.js';
export { syncSchema, type SyncConfig, type LinkConfig } from './config.js';
export type { Link, Batch, LinkState, DownlinkAck, DownlinkCommand } from './link.js';
export { decodeBatch, wireRecords, SeqDeduper } from './codec.js';
