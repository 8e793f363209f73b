import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/** Prometheus metrics of the gateway, on one registry served at `/metrics`. */
export class Metrics {
  readonly registry = new Registry();
  readonly messagesIn = new Counter({
    name: 'outpost_messages_in_total',
    help: 'Value messages received, by source adapter',
    labelNames: ['adapter'],
    registers: [this.registry],
  });
  readonly pointsStored = new Counter({
    name: 'outpost_points_stored_total',
    help: 'Points made durable, by source adapter',
    labelNames: ['adapter'],
    registers: [this.registry],
  });
  readonly errors = new Counter({
    name: 'outpost_errors_total',
    help: 'Errors by adapter and error code',
    labelNames: ['adapter', 'code'],
    registers: [this.registry],
  });
  readonly rejected = new Counter({
    name: 'outpost_rejected_publish_total',
    help: 'MQTT publications refused by the gateway, by error code',
    labelNames: ['code'],
    registers: [this.registry],
  });
  readonly setpoints = new Counter({
    name: 'outpost_setpoints_total',
    help: 'Setpoint requests by result',
    labelNames: ['result'],
    registers: [this.registry],
  });
  readonly adapterUp = new Gauge({
    name: 'outpost_adapter_up',
    help: '1 when the adapter is running',
    labelNames: ['adapter', 'type'],
    registers: [this.registry],
  });
  readonly adapterRestarts = new Counter({
    name: 'outpost_adapter_restarts_total',
    help: 'Adapter restarts after a failure',
    labelNames: ['adapter'],
    registers: [this.registry],
  });
  /** Numeric fields of each adapter's status `info` (files imported, credits used, …), one series per key. */
  readonly adapterInfo = new Gauge({
    name: 'outpost_adapter_info',
    help: 'Numeric status counters reported by adapters',
    labelNames: ['adapter', 'key'],
    registers: [this.registry],
  });
  readonly mqttClients = new Gauge({ name: 'outpost_mqtt_clients', help: 'Connected MQTT clients', registers: [this.registry] });
  readonly datapoints = new Gauge({ name: 'outpost_datapoints', help: 'Registered datapoints', registers: [this.registry] });
  readonly storagePending = new Gauge({ name: 'outpost_storage_pending_points', help: 'Points accepted but not yet durable', registers: [this.registry] });
  readonly storageReadOnly = new Gauge({
    name: 'outpost_storage_read_only',
    help: '1 while storage refuses writes (disk full, I/O error)',
    registers: [this.registry],
  });
  readonly storageDropped = new Counter({
    name: 'outpost_storage_dropped_total',
    help: 'Records dropped by retention to keep the disk budget, by kind (raw, rollup, outbox = never synced)',
    labelNames: ['kind'],
    registers: [this.registry],
  });
  readonly outboxSeq = new Gauge({ name: 'outpost_outbox_last_seq', help: 'Highest outbox sequence number', registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'outpost_' });
  }
}
