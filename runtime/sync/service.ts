import { join } from 'node:path';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../log.js';
import type { Clock } from '../../core/clock.js';
import type { Ingest } from '../ingest.js';
import type { Bus } from '../bus.js';
import type { DatapointRegistry } from '../datapoints/registry.js';
import { OutpostError, toOutpostError } from '../../core/errors.js';
import type { Store } from '../../storage/store.js';
import { syncSchema, type SyncConfig } from './config.js';
import { DurableCursor } from './cursor.js';
import { Downlink } from './downlink.js';
import type { DownlinkCommand, Link, LinkState, StorageReport } from './link.js';
import { MqttLink } from './mqtt-link.js';
import { storeCurrentValues } from './sparkplug-edge.js';
import { HttpLink } from './http-link.js';
import { SatelliteLink } from './satellite-link.js';
import { satelliteModems, type SatelliteDirectory } from './satellite.js';
import { ByteBucket } from './pacing.js';
import { compilePatterns } from './priority.js';
import { DrainScheduler, type Lane } from './scheduler.js';
import { FallbackMemory } from './fallback-memory.js';
import { DeadLetterStore, type DeadLetterSummary } from './dead-letter.js';
import { RefusalIsolator } from './isolate.js';
import { SetpointSchedules } from './schedules.js';

export interface SyncServiceOptions {
  /** The `sync:` section (raw or already parsed by `syncSchema`). */
  config: unknown;
  store: Store;
  ingest: Pick<Ingest, 'setpoint' | 'acceptMany'>;
  bus?: Pick<Bus, 'publish'>;
  log: Logger;
  /** prom-client registry served at `/metrics` (`gateway.metrics.registry`). */
  registry?: Registry;
  /** Datapoint registry: with it, `gateway.sync.*` datapoints are published. */
  datapoints?: Pick<DatapointRegistry, 'register' | 'get'>;
  clock: Clock;
  gatewayId: string;
  dataDir: string;
  /** Topic prefix of the local bus (`broker.prefix`), for `<prefix>/sync/status`. */
  topicPrefix?: string;
  /** Links built by code, matched by name to `type: custom` entries (tests). */
  customLinks?: ReadonlyMap<string, Link>;
  /** Where `type: iridium` links find their adapter's modem (default: the process-wide directory). */
  satellites?: SatelliteDirectory;
  random?: () => number;
}

export interface LinkSnapshot {
  name: string;
  role: Link['role'];
  state: LinkState;
  since: number;
  lastError: string | undefined;
  batches: number;
  records: number;
  bytes: number;
  errors: number;
}

export interface SyncSnapshot {
  enabled: boolean;
  /** Highest outbox sequence handed out / acknowledged upstream. */
  lastSeq: number;
  acked: number;
  backlogRecords: number;
  /** Estimate: backlog × payload bytes per record seen lately. */
  backlogBytes: number;
  /** Age of the oldest unsent record (its measurement time), seconds; 0 when none. */
  oldestUnsentAgeSeconds: number;
  /** Records per second acknowledged over the last ~10 s. */
  drainRate: number;
  /** Records per second added to the outbox over the last ~10 s. */
  ingestRate: number;
  /** Seconds until caught up at the current rates; null when not converging. */
  catchUpSeconds: number | null;
  activeLink: string | undefined;
  mode: 'idle' | 'primary' | 'fallback' | 'offline';
  links: LinkSnapshot[];
  downlink: { ok: number; refused: number };
  /** Records the receiver refused for good, set aside (`<dataDir>/sync/dead-letter.jsonl`): count and the newest. */
  deadLetters: DeadLetterSummary;
}

interface LinkRuntime {
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

/**
 * Upstream sync: drains the storage outbox through the configured links from a
 * durable cursor, fails over to a metered fallback link with priority data, takes
 * setpoints from upstream, and reports backlog and link health.
 */
export class SyncService {
  readonly config: SyncConfig;
  private readonly links: LinkRuntime[] = [];
  private cursor!: DurableCursor;
  private drain: DrainScheduler | undefined;
  private downlink!: Downlink;
  /** Setpoint schedules from upstream (needs the datapoint registry). */
  schedules: SetpointSchedules | undefined;
  private readonly metricNames: string[] = [];
  private gauges: Record<string, Gauge> = {};
  private counters: Record<string, Counter> = {};
  private timers: NodeJS.Timeout[] = [];
  private samples: Array<{ t: number; acked: number; lastSeq: number }> = [];
  private allPrimariesDownSince: number | undefined;
  private lastFallbackSend = 0;
  /** What went over the fallback link (so a restart does not pay for it again). */
  private fallbackMemory!: FallbackMemory;
  private deadLetters!: DeadLetterStore;
  /** The fallback send in progress (stop waits for it, so what it sent is recorded). */
  private fallbackRun: Promise<void> | undefined;
  private downlinkCounts = { ok: 0, refused: 0 };
  private bytesPerRecord = 0;
  private started = false;
  private oldest: { at: number; ageSeconds: number } = { at: 0, ageSeconds: 0 };

  constructor(private readonly o: SyncServiceOptions) {
    const parsed = syncSchema.safeParse(o.config ?? {});
    if (!parsed.success) {
      throw new OutpostError('CONFIG_INVALID', `sync: ${parsed.error.issues.map((i) => `${['sync', ...i.path].join('.')}: ${i.message}`).join('; ')}`);
    }
    this.config = parsed.data;
  }

  async start(): Promise<void> {
    if (!this.config.enabled || this.started) return;
    this.started = true;
    const { o, config } = this;
    const log = o.log;
    this.cursor = new DurableCursor(join(o.dataDir, 'sync'));
    const fromFile = await this.cursor.load();
    // The store's own ack mark survives too; the higher one wins (both only move on PUBACK/2xx).
    const fromStore = o.store.stats().ackedSeq ?? 0;
    if (fromStore > fromFile) await this.cursor.advance(fromStore);
    log.info({ cursor: this.cursor.value, lastSeq: o.store.stats().lastSeq }, 'sync starting from the durable cursor');
    const isAlarm = compilePatterns(config.fallback.alarms);
    this.fallbackMemory = new FallbackMemory({ dataDir: o.dataDir, log, isAlarm: (r) => isAlarm(r.id) || r.q !== undefined });
    await this.fallbackMemory.load(this.cursor.value);
    this.deadLetters = new DeadLetterStore({ file: join(o.dataDir, 'sync', 'dead-letter.jsonl'), log });
    await this.deadLetters.load();

    if (o.datapoints) {
      this.schedules = new SetpointSchedules({ file: join(o.dataDir, 'sync', 'schedules.json'), registry: o.datapoints, ingest: o.ingest, clock: o.clock, log: log.child({ component: 'schedules' }) });
      await this.schedules.start();
    }
    this.downlink = new Downlink({
      ingest: o.ingest,
      ...(this.schedules ? { schedules: this.schedules } : {}),
      log,
      clock: o.clock,
      memory: config.downlinkMemory,
      onResult: (command, result) => {
        if (result === 'ok') this.downlinkCounts.ok++;
        else this.downlinkCounts.refused++;
        this.counters.downlink?.inc({ command, result });
      },
    });

    for (const lc of config.links) {
      let link: Link;
      if (lc.type === 'mqtt') link = new MqttLink({ config: lc, gatewayId: o.gatewayId, log, clock: o.clock, stateDir: join(o.dataDir, 'sync'), current: storeCurrentValues(o.store), downlinkMemory: config.downlinkMemory });
      else if (lc.type === 'http') link = new HttpLink({ config: lc, gatewayId: o.gatewayId, log, clock: o.clock, stateDir: join(o.dataDir, 'sync'), random: o.random });
      else if (lc.type === 'iridium') link = new SatelliteLink({ config: lc, gatewayId: o.gatewayId, log, clock: o.clock, directory: o.satellites ?? satelliteModems });
      else {
        const custom = o.customLinks?.get(lc.name);
        if (!custom) throw new OutpostError('SYNC_CONFIG', `sync link "${lc.name}" is type custom but no link of that name was supplied`);
        link = custom;
      }
      const rt: LinkRuntime = {
        link,
        // A satellite link sends one message at a time, cut by its own `fit`.
        lane: lc.type === 'iridium' ? { link, window: 1, batchRecords: link.maxBatchRecords, bucket: new ByteBucket(lc.maxBytesPerSecond, o.clock) } : { link, window: lc.window, batchRecords: lc.batchRecords, bucket: new ByteBucket(lc.maxBytesPerSecond, o.clock) },
        since: o.clock.now(),
        batches: 0,
        records: 0,
        bytes: 0,
        errors: 0,
        blocked: undefined,
      };
      link.on('state', (_state, error) => this.onLinkState(rt, error));
      link.on('command', (cmd) => void this.onCommand(rt, cmd));
      this.links.push(rt);
    }
    this.registerMetrics();

    this.drain = new DrainScheduler({
      store: o.store,
      cursor: this.cursor,
      gatewayId: o.gatewayId,
      clock: o.clock,
      log,
      pollMs: config.pollMs,
      releaseIntervalMs: config.releaseIntervalMs,
      backoff: config.backoff,
      live: config.live,
      isAlarm,
      pickLane: () => this.pickPrimary()?.lane,
      onSent: (lane, batch, bytes) => {
        const rt = this.links.find((l) => l.lane === lane)!;
        rt.batches++;
        rt.records += batch.records.length;
        rt.bytes += bytes;
        this.bytesPerRecord = bytes / Math.max(1, batch.records.length);
        this.counters.records?.inc({ link: rt.link.name }, batch.records.length);
        this.counters.bytes?.inc({ link: rt.link.name }, bytes);
        this.fallbackMemory.forgetUpTo(batch.last);
      },
      onError: (lane, err) => {
        const rt = this.links.find((l) => l.lane === lane)!;
        rt.errors++;
        this.counters.errors?.inc({ link: rt.link.name, code: err.code });
      },
      isolator: new RefusalIsolator({ deadLetters: this.deadLetters, log, clock: o.clock }),
      onBlocked: (lane, reason) => {
        const rt = this.links.find((l) => l.lane === lane)!;
        rt.blocked = reason;
        this.onLinkState(rt, reason);
      },
      random: o.random,
    });
    if (!this.drain.ackOutbox) log.warn('storage has no ackOutbox: acknowledged records stay in the outbox; only the sync cursor moves');

    for (const rt of this.links) {
      try {
        await rt.link.start();
      } catch (err) {
        const e = toOutpostError(err, 'SYNC_CONFIG');
        await this.stop();
        throw e;
      }
    }
    this.drain.start();
    this.timers.push(setInterval(() => this.tick(), 1000));
    if (config.datapointsIntervalMs > 0 && o.datapoints) {
      await this.registerDatapoints();
      this.timers.push(setInterval(() => void this.publishDatapoints(), config.datapointsIntervalMs));
    }
    for (const t of this.timers) t.unref();
  }

  /** Tells every link with a status channel the storage state (runtime/gateway.ts storage alarm). */
  reportStorage(storage: StorageReport): void {
    for (const rt of this.links) rt.link.reportStorage?.(storage);
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    for (const t of this.timers.splice(0)) clearInterval(t);
    await this.schedules?.stop();
    await this.drain?.stop();
    for (const rt of this.links) {
      await rt.link.stop().catch((err: Error) => this.o.log.warn({ link: rt.link.name, err: err.message }, 'sync link did not stop cleanly'));
    }
    // A satellite send in flight ends with the links (or has ended): let it record what went out.
    await this.fallbackRun;
    for (const name of this.metricNames.splice(0)) this.o.registry?.removeSingleMetric(name);
  }

  /** Everything an operator needs at a glance (HTTP API, dashboard, tests). */
  async snapshot(): Promise<SyncSnapshot> {
    await this.refreshOldest(true);
    return this.snapshotSync();
  }

  private snapshotSync(): SyncSnapshot {
    const stats = this.o.store.stats();
    const acked = this.cursor?.value ?? 0;
    const backlog = Math.max(0, stats.lastSeq - acked);
    const { drainRate, ingestRate } = this.rates();
    const net = drainRate - ingestRate;
    const active = this.pickPrimary();
    const fallback = this.fallbackActive();
    return {
      enabled: this.config.enabled,
      lastSeq: stats.lastSeq,
      acked,
      backlogRecords: backlog,
      backlogBytes: Math.round(backlog * this.bytesPerRecord),
      oldestUnsentAgeSeconds: backlog === 0 ? 0 : this.oldest.ageSeconds,
      drainRate,
      ingestRate,
      catchUpSeconds: backlog === 0 ? 0 : net > 0 ? backlog / net : null,
      activeLink: fallback?.link.name ?? active?.link.name,
      mode: !this.started ? 'idle' : fallback ? 'fallback' : active ? 'primary' : 'offline',
      links: this.links.map((rt) => ({
        name: rt.link.name,
        role: rt.link.role,
        state: this.stateOf(rt),
        since: rt.since,
        lastError: this.lastErrorOf(rt),
        batches: rt.batches,
        records: rt.records,
        bytes: rt.bytes,
        errors: rt.errors,
      })),
      downlink: { ...this.downlinkCounts },
      deadLetters: this.deadLetters?.summary() ?? { count: 0, total: 0, newest: [] },
    };
  }

  /** The link's own state, or `blocked` while its receiver refuses records for good (it is reachable). */
  private stateOf(rt: LinkRuntime): LinkState {
    return rt.blocked !== undefined && rt.link.state === 'up' ? 'blocked' : rt.link.state;
  }

  private lastErrorOf(rt: LinkRuntime): string | undefined {
    return (rt.blocked !== undefined && rt.link.state === 'up' ? rt.blocked : undefined) ?? rt.link.lastError;
  }

  private pickPrimary(): LinkRuntime | undefined {
    const primaries = this.links.filter((l) => l.link.role === 'primary');
    return primaries.find((l) => l.link.state === 'up') ?? primaries.find((l) => l.link.connectionless && l.link.state === 'down');
  }

  private fallbackActive(): LinkRuntime | undefined {
    // A connectionless primary (HTTP) that is down is still the drain's lane, so it keeps
    // probing; it does not count as available here, or an unreachable HTTP ingest would keep
    // the fallback from ever starting.
    const primaryUp = this.links.some((l) => l.link.role === 'primary' && l.link.state === 'up');
    if (primaryUp || this.allPrimariesDownSince === undefined) return undefined;
    if (this.o.clock.now() - this.allPrimariesDownSince < this.config.fallback.afterMs) return undefined;
    return this.links.find((l) => l.link.role === 'fallback' && l.link.state === 'up');
  }

  /** One series per link and state, 1 for the current one (so a dashboard can show the state, not just up/down). */
  private setStateGauge(link: string, state: LinkState): void {
    const g = this.gauges.linkState;
    if (!g) return;
    const previous = this.stateShown.get(link);
    if (previous !== undefined && previous !== state) g.set({ link, state: previous }, 0);
    g.set({ link, state }, 1);
    this.stateShown.set(link, state);
  }

  private readonly stateShown = new Map<string, LinkState>();

  /**
   * A link changed state, or its receiver started or stopped refusing records (`blocked`
   * overlays `up`). Everything an observer sees changes only with the shown state.
   */
  private onLinkState(rt: LinkRuntime, error: string | undefined): void {
    const state = this.stateOf(rt);
    if (this.shown.get(rt) === state) return;
    this.shown.set(rt, state);
    rt.since = this.o.clock.now();
    const connected = rt.link.state === 'up';
    this.gauges.linkUp?.set({ link: rt.link.name }, connected ? 1 : 0);
    this.setStateGauge(rt.link.name, state);
    const level = state === 'down' || state === 'blocked' ? 'warn' : 'info';
    this.o.log[level]({ link: rt.link.name, state, ...(error ? { reason: error } : {}) }, `sync link ${state}`);
    this.updatePrimaryDown();
    if (connected) this.drain?.wake();
    const prefix = this.o.topicPrefix ?? 'outpost';
    this.o.bus
      ?.publish(`${prefix}/sync/status`, JSON.stringify({ links: this.links.map((l) => ({ name: l.link.name, state: this.stateOf(l), lastError: this.lastErrorOf(l) })), t: this.o.clock.now() }), { retain: true })
      .catch((err: Error) => this.o.log.debug({ err: err.message }, 'sync status not published on the local bus'));
  }

  /** The state last shown per link (log, bus, gauges). */
  private readonly shown = new Map<LinkRuntime, LinkState>();

  private updatePrimaryDown(): void {
    const anyUp = this.links.some((l) => l.link.role === 'primary' && l.link.state === 'up');
    if (anyUp) this.allPrimariesDownSince = undefined;
    else this.allPrimariesDownSince ??= this.o.clock.now();
  }

  private async onCommand(rt: LinkRuntime, cmd: DownlinkCommand): Promise<void> {
    const ack = await this.downlink.handle(cmd);
    if (cmd.reply) {
      cmd.reply(ack);
      return;
    }
    if (!rt.link.sendAck) return;
    try {
      await rt.link.sendAck(ack);
    } catch (err) {
      this.o.log.warn({ link: rt.link.name, requestId: ack.requestId, err: (err as Error).message }, 'downlink acknowledgement not delivered');
    }
  }

  /** Once a second: rate samples, and the fallback lane while every primary is down. */
  private tick(): void {
    const now = this.o.clock.now();
    const stats = this.o.store.stats();
    this.samples.push({ t: now, acked: this.cursor.value, lastSeq: stats.lastSeq });
    while (this.samples.length > 2 && now - this.samples[0]!.t > 10_000) this.samples.shift();
    this.updatePrimaryDown();
    if (!this.fallbackRun) this.fallbackRun = this.maybeSendFallback().finally(() => (this.fallbackRun = undefined));
  }

  private rates(): { drainRate: number; ingestRate: number } {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last || last.t <= first.t) return { drainRate: 0, ingestRate: 0 };
    const dt = (last.t - first.t) / 1000;
    return { drainRate: (last.acked - first.acked) / dt, ingestRate: (last.lastSeq - first.lastSeq) / dt };
  }

  /**
   * Satellite fallback: every `fallback.intervalMs`, alarms and latest values that
   * the receiver has not had yet go over the metered link. They do not move the
   * cursor; the primary backfills everything when it returns and the receiver drops
   * what it already has by sequence number.
   */
  private async maybeSendFallback(): Promise<void> {
    const fb = this.fallbackActive();
    if (!fb || !this.drain) return;
    const now = this.o.clock.now();
    if (this.lastFallbackSend !== 0 && now - this.lastFallbackSend < this.config.fallback.intervalMs) return;
    try {
      const lastSeq = this.o.store.stats().lastSeq;
      const scan = this.config.live.scanRecords;
      const batch = await this.drain.priorityBatch(fb.link.maxBatchRecords, this.fallbackMemory.skip, Math.max(this.cursor.value, lastSeq - scan), scan, fb.link.fit?.bind(fb.link));
      this.lastFallbackSend = now;
      if (!batch) return;
      const bytes = await this.fallbackMemory.send(fb.lane, batch, this.cursor.value);
      fb.batches++;
      fb.records += batch.records.length;
      fb.bytes += bytes;
      this.counters.records?.inc({ link: fb.link.name }, batch.records.length);
      this.counters.bytes?.inc({ link: fb.link.name }, bytes);
    } catch (err) {
      const e = toOutpostError(err);
      fb.errors++;
      this.counters.errors?.inc({ link: fb.link.name, code: e.code });
      this.o.log.warn({ link: fb.link.name, code: e.code, reason: e.message }, 'fallback batch not sent');
    }
  }

  /** Reads the oldest unsent record's time (at most once a second unless forced). */
  private async refreshOldest(force = false): Promise<void> {
    const now = this.o.clock.now();
    if (!this.cursor || (!force && now - this.oldest.at < 1000)) return;
    const [head] = await this.o.store.readOutbox(this.cursor.value, 1);
    this.oldest = { at: now, ageSeconds: head ? Math.max(0, (now - head.t) / 1000) : 0 };
  }

  private registerMetrics(): void {
    const registry = this.o.registry;
    if (!registry) return;
    const registers = [registry];
    const gauge = (name: string, help: string, set: (s: SyncSnapshot) => number, labelNames: string[] = []): Gauge => {
      const self = this;
      const g = new Gauge({
        name,
        help,
        labelNames,
        registers,
        async collect() {
          await self.refreshOldest();
          if (labelNames.length === 0) this.set(set(self.snapshotSync()));
        },
      });
      this.metricNames.push(name);
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
    for (const rt of this.links) {
      this.gauges.linkUp!.set({ link: rt.link.name }, rt.link.state === 'up' ? 1 : 0);
      this.setStateGauge(rt.link.name, rt.link.state);
    }
    const counter = (name: string, help: string, labelNames: string[]): Counter => {
      const c = new Counter({ name, help, labelNames, registers });
      this.metricNames.push(name);
      return c;
    };
    this.counters = {
      records: counter('outpost_sync_records_total', 'Records acknowledged upstream, by link', ['link']),
      bytes: counter('outpost_sync_bytes_total', 'Payload bytes acknowledged upstream, by link', ['link']),
      errors: counter('outpost_sync_errors_total', 'Failed sends, by link and error code', ['link', 'code']),
      downlink: counter('outpost_sync_downlink_total', 'Downlink commands, by command and result', ['command', 'result']),
    };
  }

  private async registerDatapoints(): Promise<void> {
    const reg = this.o.datapoints!;
    const defs = [
      { id: 'gateway.sync.backlog', unit: 'records', description: 'Outbox records not yet acknowledged upstream' },
      { id: 'gateway.sync.backlog_bytes', unit: 'B', description: 'Estimated bytes of the sync backlog' },
      { id: 'gateway.sync.oldest_age', unit: 's', description: 'Age of the oldest unsent record' },
      { id: 'gateway.sync.drain_rate', unit: 'records/s', description: 'Records acknowledged upstream per second' },
      { id: 'gateway.sync.catchup', unit: 's', description: 'Estimated time to send the backlog (-1: not converging)' },
    ];
    for (const d of defs) await reg.register({ ...d, adapter: 'sync', kind: 'sensor', type: 'number' });
    for (const rt of this.links) {
      await reg.register({ id: `gateway.sync.link.${rt.link.name}.up`, adapter: 'sync', kind: 'sensor', type: 'boolean', description: `sync link ${rt.link.name} connected` });
      await reg.register({ id: `gateway.sync.link.${rt.link.name}.state`, adapter: 'sync', kind: 'sensor', type: 'string', description: `sync link ${rt.link.name} state` });
      await reg.register({ id: `gateway.sync.link.${rt.link.name}.last_error`, adapter: 'sync', kind: 'sensor', type: 'string', description: `sync link ${rt.link.name}: last error` });
    }
  }

  private async publishDatapoints(): Promise<void> {
    try {
      const s = await this.snapshot();
      const t = this.o.clock.now();
      await this.o.ingest.acceptMany('sync', [
        { id: 'gateway.sync.backlog', v: s.backlogRecords, t },
        { id: 'gateway.sync.backlog_bytes', v: s.backlogBytes, t },
        { id: 'gateway.sync.oldest_age', v: Math.round(s.oldestUnsentAgeSeconds), t },
        { id: 'gateway.sync.drain_rate', v: Math.round(s.drainRate), t },
        { id: 'gateway.sync.catchup', v: s.catchUpSeconds === null ? -1 : Math.round(s.catchUpSeconds), t },
        ...s.links.flatMap((l) => [
          { id: `gateway.sync.link.${l.name}.up`, v: l.state === 'up' || l.state === 'blocked', t },
          { id: `gateway.sync.link.${l.name}.state`, v: l.state, t },
          // Bounded: an error message is one line, but a server may put a page into it.
          { id: `gateway.sync.link.${l.name}.last_error`, v: (l.lastError ?? '').slice(0, 500), t },
        ]),
      ]);
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, 'sync datapoints not published');
    }
  }
}
