import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { OutpostError, toOutpostError } from '../core/errors.js';
import '../storage/errors.js'; // registers the STORAGE_* codes thrown here
import type { Logger } from './log.js';
import { listen } from './http/server.js';
import { measure, type StorageRoom } from '../storage/level/storage-alarm.js';
import type { Store } from '../storage/store.js';
import { isNoRoom } from '../storage/level/space-reserve.js';

export interface OpenStoreOptions {
  store: Store;
  /** The LevelDB folder, to measure its file system (undefined: a store without a disk). */
  path?: string;
  log: Logger;
  http: { host: string; port: number; tls?: { certFile: string; keyFile: string } };
  gateway: string;
  version: string;
  /** How often opening is tried again while the disk is full (default 5000 ms). */
  intervalMs?: number;
  /** Aborted by a stop while waiting. */
  signal: AbortSignal;
}

/**
 * Opens the store; when that fails because the disk is full, waits for room instead of
 * exiting. LevelDB cannot open without room: opening turns its log into a table and writes a
 * new manifest (seen on a full tmpfs: `IO error: …/000005.ldb: No space left on device`).
 * Exiting made a supervisor restart the gateway in a loop, and nothing answered meanwhile.
 * While it waits, the HTTP port answers 503 — `/healthz` with the reason and the room
 * needed — and the MQTT port stays closed, so devices keep their readings and retry.
 * Returns the HTTP port it answered on (the gateway goes on on that port when the config says 0).
 */
export async function openStore(o: OpenStoreOptions): Promise<{ httpPort?: number }> {
  let error: OutpostError;
  try {
    await o.store.open();
    return {};
  } catch (err) {
    if (!isNoRoom(err)) throw err;
    error = toOutpostError(err, 'STORAGE_OPEN_FAILED');
  }
  const intervalMs = o.intervalMs ?? 5000;
  let room: StorageRoom | undefined = o.path ? await measure(o.path) : undefined;
  const server = waitingServer(o, intervalMs, () => ({ error: error.message, room }));
  const httpPort = await listen(server, o.http.host, o.http.port);
  o.log.error(
    { component: 'storage', error: error.message, ...roomFields(room), http: httpPort, retryEverySeconds: intervalMs / 1000 },
    'storage cannot be opened: the disk is full; waiting for room (HTTP answers 503, MQTT is closed until then)',
  );
  try {
    for (;;) {
      await sleep(intervalMs, undefined, { signal: o.signal });
      room = o.path ? await measure(o.path) : undefined;
      if (room && room.free < room.needed) continue;
      try {
        await o.store.open();
        o.log.warn({ component: 'storage' }, 'storage opened: there is room again; starting');
        return { httpPort };
      } catch (err) {
        if (!isNoRoom(err)) throw err;
        error = toOutpostError(err, 'STORAGE_OPEN_FAILED');
      }
    }
  } catch (err) {
    if (o.signal.aborted) throw new OutpostError('STORAGE_CLOSED', 'stopped while waiting for room to open storage', { cause: err });
    throw err;
  } finally {
    server.closeAllConnections?.();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

function roomFields(room: StorageRoom | undefined): Record<string, number> {
  return room ? { freeBytes: room.free, neededBytes: room.needed } : {};
}

/** Answers every request with 503: `/healthz` as the running gateway does, the rest with the error. No data is served, so nothing needs a login. */
function waitingServer(o: OpenStoreOptions, intervalMs: number, state: () => { error: string; room: StorageRoom | undefined }): Server {
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const { error, room } = state();
    res.statusCode = 503;
    res.setHeader('content-type', 'application/json; charset=utf-8');
    res.setHeader('cache-control', 'no-store');
    res.setHeader('retry-after', String(Math.ceil(intervalMs / 1000)));
    const path = (req.url ?? '/').split('?')[0];
    const body =
      path === '/healthz'
        ? {
            status: 'error',
            version: o.version,
            gateway: o.gateway,
            storage: { state: 'unavailable', error, ...roomFields(room), retryEverySeconds: intervalMs / 1000 },
            adapters: {},
          }
        : { error: new OutpostError('STORAGE_CLOSED', `storage cannot be opened (${error}): the gateway starts once the disk has room`).toJSON() };
    res.end(JSON.stringify(body));
  };
  if (!o.http.tls) return createServer(handler);
  try {
    return createHttpsServer({ cert: readFileSync(o.http.tls.certFile), key: readFileSync(o.http.tls.keyFile) }, handler);
  } catch (err) {
    throw new OutpostError('CONFIG_INVALID', `http.tls: cannot read ${(err as { path?: string }).path ?? 'certificate files'}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
