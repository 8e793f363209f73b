import { ServiceRegistry } from '../services.js';
import type { StorageReport } from './link.js';

/**
 * The contract between a metered satellite modem adapter (adapters/iridium) and the
 * sync service's fallback link (`satellite-link.ts`). The adapter owns the serial port,
 * the session policy, the budget and the wire codec; the link decides what to send.
 * Kept here, in the runtime, so sync never imports an adapter: the adapter implements
 * this interface and provides it through `ctx.services` (kind `satellite-modem`) while it runs.
 */

/** Budget class of a message: alarms may use the whole daily budget, latest values less. */
export type SatellitePriority = 'alarm' | 'latest' | 'history';

/** A reading as the fallback link hands it over: an outbox record. */
export interface SatelliteReading {
  seq: number;
  id: string;
  t: number;
  v: unknown;
  q?: 'stale' | 'bad';
}

/**
 * An authenticated MT command (the adapter checked the tag and the replay counter). `ref`: hex
 * of the 8-byte reference to the central requestId it carries (`requestRef`), if any.
 */
export type SatelliteCommand =
  | { kind: 'setpoint'; id: string; v: number | boolean; expiresInS?: number; ref?: string }
  | { kind: 'schedule'; id: string; entries: Array<{ at: number; v: number | boolean }>; ref?: string }
  | { kind: 'command'; name: string; ref?: string };

export interface SatelliteMt {
  /** Authenticated, strictly increasing counter of the MT message. */
  counter: number;
  /** Iridium MT sequence number (logs). */
  mtmsn: number;
  commands: SatelliteCommand[];
}

export interface SatelliteModem {
  /** Modem link state in the adapter's words: idle, session, backoff, waiting, no_signal, budget, account_error, down, starting, stopped. */
  readonly state: string;
  /** Largest MO message (bytes). */
  readonly maxMessageBytes: number;
  /** The adapter also forwards bus values on its own (stand-alone mode): both would spend credits. */
  readonly forwarding: boolean;
  /** Whether the wire codec can carry this reading (datapoint in its table, type, time). */
  carries(r: SatelliteReading): boolean;
  /** Encodes the longest prefix of `readings` that fits in `maxBytes`, with their sequence numbers. */
  pack(readings: readonly SatelliteReading[], maxBytes: number): { bytes: Buffer; count: number };
  /** Credits one message of this size costs. */
  creditsFor(bytes: number): number;
  /** Whether the budget allows `credits` more today for this priority. */
  allows(credits: number, priority: SatellitePriority): boolean;
  /** Queues a packed message; resolves once the satellite gateway took it (SBD MO success). */
  sendPacked(bytes: Buffer, priority: SatellitePriority): Promise<{ credits: number }>;
  /** Encodes acknowledgements of MT messages as one small MO message. */
  encodeAck(acks: ReadonlyArray<{ counter: number; results: string[] }>): Buffer;
  /**
   * Queues the gateway's storage state (read-only, or recovered) as a small MO message of the
   * alarm class, sent before anything else: one slot (a newer state replaces one not sent yet),
   * kept on the adapter's disk until sent. `undefined`: the gateway started and reported
   * nothing, so its storage was writable then (a read-only state waiting from before the
   * restart is stale). Resolves once saved; the state is queued even when saving fails.
   */
  reportStorage(storage: StorageReport | undefined): Promise<void>;
  /** State changes of the modem link; returns the unsubscribe function. */
  onState(listener: (state: string, detail?: string) => void): () => void;
  /**
   * Hands authenticated MT messages to the sync downlink instead of applying them in the
   * adapter (setpoints then take the downlink path and are acknowledged upstream).
   * Returns the function that gives them back to the adapter.
   */
  setCommandSink(sink: (mt: SatelliteMt) => void): () => void;
}

declare module '../services.js' {
  interface ServiceTypes {
    /** A running satellite modem adapter, by adapter id (the sync service's iridium link uses it). */
    'satellite-modem': SatelliteModem;
  }
}

/**
 * Running satellite modems by `(gateway id, adapter id)`, over the gateways' service
 * registries (runtime/services.ts). The gateway builds one with its own registry (`home`),
 * where its adapters provide their modem through `ctx.services` while they run (the adapter
 * host withdraws it when the adapter stops); other gateway ids get registries of their own
 * here, so gateways in one process never see each other's modems. A link watches its entry,
 * so it attaches whenever the adapter is running, whatever the start order.
 */
export class SatelliteDirectory {
  private readonly byGateway = new Map<string, ServiceRegistry>();

  constructor(home?: { gatewayId: string; services: ServiceRegistry }) {
    if (home) this.byGateway.set(home.gatewayId, home.services);
  }

  register(gatewayId: string, adapterId: string, modem: SatelliteModem): () => void {
    return this.services(gatewayId).register('satellite-modem', adapterId, modem);
  }

  get(gatewayId: string, adapterId: string): SatelliteModem | undefined {
    return this.byGateway.get(gatewayId)?.get('satellite-modem', adapterId);
  }

  /** Calls `watcher` now with the current modem (or undefined) and on every change. */
  watch(gatewayId: string, adapterId: string, watcher: (modem: SatelliteModem | undefined) => void): () => void {
    return this.services(gatewayId).watch('satellite-modem', adapterId, watcher);
  }

  private services(gatewayId: string): ServiceRegistry {
    let services = this.byGateway.get(gatewayId);
    if (!services) this.byGateway.set(gatewayId, (services = new ServiceRegistry()));
    return services;
  }
}
