/**
 * The gateway's event log, as producers see it: adapters (a charger's meter went stale, load
 * management paused a session), the runtime (an adapter failed, a link went down, storage is
 * read-only). The alarms feature (runtime/alarms/) provides it as the service `('events',
 * 'gateway')`; adapters reach it through `ctx.services.get('events', 'gateway')` and carry on
 * without it when it is absent (tests, a gateway without the feature).
 */
export type EventSeverity = 'info' | 'warning' | 'alarm';

export interface GatewayEventInput {
  /** Who says so: an adapter id, `sync`, `storage`, `gateway`, `flows`, `alarms`. */
  source: string;
  /** What happened, a stable code: `adapter.failed`, `link.down`, `meter.stale`, `load.paused`… */
  kind: string;
  severity: EventSeverity;
  /** One line a technician reads. */
  message: string;
  /** Details (bounded by the sink). */
  data?: Record<string, unknown>;
  /** When it happened (epoch ms); now when absent. */
  t?: number;
}

export interface EventSink {
  record(event: GatewayEventInput): void;
}
