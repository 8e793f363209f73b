export { SyncService, type SyncServiceOptions, type SyncSnapshot, type LinkSnapshot } from './service.js';
export { syncSchema, type SyncConfig, type LinkConfig, type IridiumLinkConfig } from './config.js';
export type { Link, Batch, LinkState, DownlinkAck, DownlinkCommand } from './link.js';
export { decodeBatch, wireRecords, SeqDeduper } from './codec.js';
export {
  SatelliteDirectory,
  type SatelliteModem,
  type SatelliteMt,
  type SatelliteCommand,
  type SatellitePriority,
  type SatelliteReading,
} from './satellite.js';
export { SatelliteLink } from './satellite-link.js';
export { syncErrors, satelliteErrors } from './errors.js';
