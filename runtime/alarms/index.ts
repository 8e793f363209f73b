import { join } from 'node:path';
import type { Clock } from '../../core/clock.js';
import type { Bus } from '../bus.js';
import type { DatapointRegistry } from '../datapoints/registry.js';
import type { Ingest } from '../ingest.js';
import type { Logger } from '../log.js';
import type { Topics } from '../topics.js';
import type { Store } from '../../storage/store.js';
import type { AlarmsConfig } from './config.js';
import { AlarmEngine } from './engine.js';
import { EventLog } from './event-log.js';
import { RuntimeEvents } from './runtime-events.js';
import { ALARM_OWNER } from './state.js';

export { AlarmEngine } from './engine.js';
export { EventLog, type GatewayEvent } from './event-log.js';
export type { AlarmState } from './state.js';

export interface AlarmsFeatureDeps {
  config: AlarmsConfig;
  /** `<dataDir>`: the event log lives in `<dataDir>/alarms/`. */
  dataDir: string;
  clock: Clock;
  log: Logger;
  bus: Bus;
  topics: Topics;
  registry: DatapointRegistry;
  ingest: Pick<Ingest, 'accept'>;
  store: Pick<Store, 'latest'>;
  version?: string;
}

/**
 * What Node-RED's `outpost alarm` node reaches (flows/node-red-settings.ts `alarms`): raise
 * and clear an alarm of its own by id. Errors are OutpostErrors (ALARM_INVALID, ALARM_OWNED,
 * ALARM_LIMIT), shown to Catch nodes as `msg.outpostError`.
 */
export interface FlowAlarms {
  raise(input: { id: string; severity: 'warning' | 'alarm'; message?: string; by: string }): Promise<unknown>;
  clear(id: string, by: string): Promise<unknown>;
}

/**
 * The alarms feature as the gateway wires it: the event log (also the `('events', 'gateway')`
 * service adapters record through), the alarm engine, and the runtime's own events.
 */
export class AlarmsFeature {
  readonly events: EventLog;
  readonly engine: AlarmEngine;
  private readonly runtime: RuntimeEvents;

  constructor(private readonly o: AlarmsFeatureDeps) {
    this.events = new EventLog({
      dir: join(o.dataDir, 'alarms'),
      log: o.log,
      clock: o.clock,
      maxFileBytes: o.config.events.maxFileBytes,
      keepFiles: o.config.events.keepFiles,
    });
    this.engine = new AlarmEngine({
      config: o.config,
      clock: o.clock,
      log: o.log,
      events: this.events,
      datapoints: o.registry,
      latest: (id) => o.store.latest(id),
      publish: async (id, v) => void (await o.ingest.accept(ALARM_OWNER, id, { v })),
      bus: o.bus,
      topics: o.topics,
    });
    this.runtime = new RuntimeEvents({ bus: o.bus, topics: o.topics, events: this.events });
  }

  /** What Node-RED nodes use (`source: flows`). */
  get flows(): FlowAlarms {
    return { raise: (input) => this.engine.raise(input), clear: (id, by) => this.engine.clear(id, by) };
  }

  async start(): Promise<void> {
    await this.events.open();
    await this.runtime.start();
    await this.engine.start();
    this.events.record({
      source: 'gateway',
      kind: 'gateway.started',
      severity: 'info',
      message: `gateway started${this.o.version ? ` (version ${this.o.version})` : ''}`,
    });
  }

  async stop(): Promise<void> {
    await this.engine.stop();
    await this.runtime.stop();
    this.events.record({ source: 'gateway', kind: 'gateway.stopped', severity: 'info', message: 'gateway stopped' });
    await this.events.close();
  }
}
