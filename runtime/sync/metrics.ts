// The sync service's Prometheus metrics (`outpost_sync_*`): registering them, showing link
// states, removing them on stop. Separate from the service (service.ts): what is measured is
// decided there, how it is exposed here.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { LinkState } from './link.js';
import type { LinkRuntime } from './link-runtime.js';
import type { SyncSnapshot } from './snapshot.js';

/** What the gauges read when scraped. */
export interface MetricsSource {
  /** Reads the oldest unsent record's time (at most once a second). */
  refreshOldest(): Promise<void>;
  snapshot(): SyncSnapshot;
}

export class SyncMetrics {
  gauges: Record<string, Gauge> = {};
  counters: Record<string, Counter> = {};
  private readonly names: string[] = [];
  private readonly stateShown = new Map<string, LinkState>();

  constructor(private readonly registry: Registry | undefined) {}

  /** Registers the gauges and counters (none without a registry); the gauges read `source` when scraped. */
  register(source: MetricsSource, links: readonly LinkRuntime[]): void {
    const registry = this.registry;
    if (!registry) return;
    const registers = [registry];
    const gauge = (name: string, help: string, set: (s: SyncSnapshot) => number, labelNames: string[] = []): Gauge => {
      const g = new Gauge({
        name,
        help,
        labelNames,
        registers,
        async collect() {
          await source.refreshOldest();
          if (labelNames.length === 0) this.set(set(source.snapshot()));
        },
      });
      this.names.push(name);
      return g;
    };
    this.gauges = {
      backlog: gauge('outpost_sync_backlog_records', 'Outbox records not yet acknowledged upstream', (s) => s.backlogRecords),
      backlogBytes: gauge('outpost_sync_backlog_bytes', 'Estimated payload bytes of the backlog', (s) => s.backlogBytes),
      oldest: gauge('outpost_sync_oldest_unsent_age_seconds', 'Age of the oldest unsent record', (s) => s.oldestUnsentAgeSeconds),
      rate: gauge('outpost_sync_drain_rate', 'Records per second acknowledged upstream (10 s window)', (s) => s.drainRate),
      catchUp: gauge('outpost_sync_catchup_seconds', 'Estimated seconds until the backlog is sent (-1: not converging)', (s) => s.catchUpSeconds ?? -1),
      acked: gauge('outpost_sync_acked_seq', 'Highest outbox sequence acknowledged upstream', (s) => s.acked),
      linkUp: gauge('outpost_sync_link_up', '1 when the sync link is connected', () => 0, ['link']),
      linkState: gauge('outpost_sync_link_state', '1 for the state each sync link is in (connecting, up, down, …)', () => 0, ['link', 'state']),
    };
    for (const rt of links) {
      this.gauges.linkUp!.set({ link: rt.link.name }, rt.link.state === 'up' ? 1 : 0);
      this.setStateGauge(rt.link.name, rt.link.state);
    }
    const counter = (name: string, help: string, labelNames: string[]): Counter => {
      const c = new Counter({ name, help, labelNames, registers });
      this.names.push(name);
      return c;
    };
    this.counters = {
      records: counter('outpost_sync_records_total', 'Records acknowledged upstream, by link', ['link']),
      bytes: counter('outpost_sync_bytes_total', 'Payload bytes acknowledged upstream, by link', ['link']),
      errors: counter('outpost_sync_errors_total', 'Failed sends, by link and error code', ['link', 'code']),
      downlink: counter('outpost_sync_downlink_total', 'Downlink commands, by command and result', ['command', 'result']),
    };
  }

  /** One series per link and state, 1 for the current one (so a dashboard can show the state, not just up/down). */
  setStateGauge(link: string, state: LinkState): void {
    const g = this.gauges.linkState;
    if (!g) return;
    const previous = this.stateShown.get(link);
    if (previous !== undefined && previous !== state) g.set({ link, state: previous }, 0);
    g.set({ link, state }, 1);
    this.stateShown.set(link, state);
  }

  /** Takes every metric registered off the registry (stop). */
  remove(): void {
    for (const name of this.names.splice(0)) this.registry?.removeSingleMetric(name);
  }
}
