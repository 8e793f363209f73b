import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Central's Prometheus metrics (`GET /metrics`), on a registry of its own. Labels are bounded:
 * `via` (mqtt, http, rockblock), `lane`, `path`, error codes of the catalogues; per-gateway
 * series only for configured gateways (last seen, filled at scrape from the store).
 */
export class CentralMetrics {
  readonly registry = new Registry();
  /** Records by how they came and what happened to them: stored, duplicate (seq already stored), refused (invalid). */
  readonly records = new Counter({
    name: 'outpost_central_ingest_records_total',
    help: 'Records received, by path and lane: stored, duplicate (seq already stored) or refused (invalid)',
    labelNames: ['via', 'lane', 'result'] as const,
    registers: [this.registry],
  });
  /** Messages and requests handled, by ingest path and outcome (`ok` or the error code). */
  readonly requests = new Counter({
    name: 'outpost_central_ingest_requests_total',
    help: 'Ingest messages and requests, by path and outcome (ok or the error code)',
    labelNames: ['path', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly commitSeconds = new Histogram({
    name: 'outpost_central_ingest_commit_seconds',
    help: 'Time from a batch decoded to its records committed (durable)',
    labelNames: ['via'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly inflight = new Gauge({
    name: 'outpost_central_ingest_inflight',
    help: 'HTTP ingest requests being handled',
    registers: [this.registry],
  });
  readonly mqttConnected = new Gauge({
    name: 'outpost_central_mqtt_connected',
    help: '1 while the MQTT ingest connection is up',
    labelNames: ['connection'] as const,
    registers: [this.registry],
  });
  readonly satelliteCredits = new Counter({
    name: 'outpost_central_satellite_credits_total',
    help: 'Iridium credits of the MO messages received through the RockBLOCK webhook',
    labelNames: ['gateway'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'outpost_central_' });
  }

  /** A gauge filled when Prometheus scrapes (`collect`), e.g. from the store. */
  scraped(name: string, help: string, labelNames: string[], collect: (g: Gauge<string>) => Promise<void> | void): void {
    new Gauge({
      name,
      help,
      labelNames,
      registers: [this.registry],
      async collect() {
        this.reset();
        await collect(this);
      },
    });
  }
}
