// SyncService: drains the outbox through the links, fails over to the fallback link, takes
// downlink commands and reports. The parts it is built from sit beside it: link-runtime.ts (a
// link and its lane), snapshot.ts (what it reports), metrics.ts and status-datapoints.ts
// (how it reports).
import { join } from 'node:path';
import type { Registry } from 'prom-client';
import type { Logger } from '../log.js';
import type { Clock } from '../../core/clock.js';
import type { Ingest } from '../ingest.js';
import type { Bus } from '../bus.js';
import type { DatapointRegistry } from '../datapoints/registry.js';
import { OutpostError, toOutpostError } from '../../core/errors.js';
import './errors.js';
import type { Store } from '../../storage/store.js';
import { syncSchema, type SyncConfig } from './config.js';
import { DurableCursor } from './cursor.js';
import { Downlink, type ConfigCommandHandler, type DownlinkOptions } from './downlink.js';
import { CommandMemory } from './command-memory.js';
import type { DownlinkCommand, Link, LinkState, StorageReport } from './link.js';
import type { SatelliteDirectory } from './satellite.js';
import { compilePatterns } from './priority.js';
import { DrainScheduler } from './scheduler.js';
import { FallbackMemory } from './fallback-memory.js';
import { DeadLetterStore } from './dead-letter.js';
import { RefusalIsolator } from './isolate.js';
import { SetpointSchedules } from './schedules.js';
import { formatZodError } from '../../core/zod-error.js';
import { createLinkRuntime, lastErrorOf, stateOf, type LinkRuntime } from './link-runtime.js';
import type { SyncSnapshot } from './snapshot.js';
import { SyncMetrics } from './metrics.js';
import { publishSyncDatapoints, registerSyncDatapoints } from './status-datapoints.js';

export type { LinkSnapshot, SyncSnapshot } from './snapshot.js';

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
  /**
   * Where `type: iridium` links find their adapter's modem: the gateway's own service registry
   * (runtime/gateway.ts). Without it no modem is ever found (there is no process-wide one).
   */
  satellites?: SatelliteDirectory;
  /** The `config` command's handler (remote-config.ts); without it a pushed config is refused. */
  remoteConfig?: ConfigCommandHandler;
  /** The `alarm.ack` command: the alarm engine and the audit log (runtime/alarms). */
  alarms?: DownlinkOptions['alarms'];
  random?: () => number;
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
  private readonly metrics: SyncMetrics;
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
      throw new OutpostError('CONFIG_INVALID', `sync: ${formatZodError(parsed.error, { prefix: 'sync' })}`);
    }
    this.config = parsed.data;
    this.metrics = new SyncMetrics(o.registry);
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
      this.schedules = new SetpointSchedules({
        file: join(o.dataDir, 'sync', 'schedules.json'),
        registry: o.datapoints,
        ingest: o.ingest,
        clock: o.clock,
        log: log.child({ component: 'schedules' }),
      });
      await this.schedules.start();
    }
    // One requestId memory for every link's commands, so "applied once" holds across links and restarts.
    const commandMemory = new CommandMemory({ file: join(o.dataDir, 'sync', 'commands.json'), maxIds: config.downlinkMemory, clock: o.clock });
    await commandMemory.load();
    const absorbed = await commandMemory.absorbLegacy();
    if (absorbed > 0) log.info({ absorbed }, 'per-link downlink command memories merged into sync/commands.json');
    this.downlink = new Downlink({
      commandMemory,
      ingest: o.ingest,
      ...(this.schedules ? { schedules: this.schedules } : {}),
      log,
      clock: o.clock,
      memory: config.downlinkMemory,
      ...(o.remoteConfig ? { remoteConfig: o.remoteConfig } : {}),
      ...(o.alarms ? { alarms: o.alarms } : {}),
      onResult: (command, result) => {
        if (result === 'ok') this.downlinkCounts.ok++;
        else this.downlinkCounts.refused++;
        this.metrics.counters.downlink?.inc({ command, result });
      },
    });

    for (const lc of config.links) {
      const rt = createLinkRuntime(lc, o, config, commandMemory);
      const link = rt.link;
      link.on('state', (_state, error) => this.onLinkState(rt, error));
      link.on('command', (cmd) => void this.onCommand(rt, cmd));
      this.links.push(rt);
    }
    this.metrics.register({ refreshOldest: () => this.refreshOldest(), snapshot: () => this.snapshotSync() }, this.links);

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
        this.metrics.counters.records?.inc({ link: rt.link.name }, batch.records.length);
        this.metrics.counters.bytes?.inc({ link: rt.link.name }, bytes);
        this.fallbackMemory.forgetUpTo(batch.last);
      },
      onError: (lane, err) => {
        const rt = this.links.find((l) => l.lane === lane)!;
        rt.errors++;
        this.metrics.counters.errors?.inc({ link: rt.link.name, code: err.code });
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
      await registerSyncDatapoints(o.datapoints, this.links);
      this.timers.push(
        setInterval(() => void publishSyncDatapoints({ snapshot: () => this.snapshot(), ingest: o.ingest, clock: o.clock, log }), config.datapointsIntervalMs),
      );
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
    this.metrics.remove();
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
        state: stateOf(rt),
        since: rt.since,
        lastError: lastErrorOf(rt),
        batches: rt.batches,
        records: rt.records,
        bytes: rt.bytes,
        errors: rt.errors,
      })),
      downlink: { ...this.downlinkCounts },
      deadLetters: this.deadLetters?.summary() ?? { count: 0, total: 0, newest: [] },
    };
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

  /**
   * A link changed state, or its receiver started or stopped refusing records (`blocked`
   * overlays `up`). Everything an observer sees changes only with the shown state.
   */
  private onLinkState(rt: LinkRuntime, error: string | undefined): void {
    const state = stateOf(rt);
    if (this.shown.get(rt) === state) return;
    this.shown.set(rt, state);
    rt.since = this.o.clock.now();
    const connected = rt.link.state === 'up';
    this.metrics.gauges.linkUp?.set({ link: rt.link.name }, connected ? 1 : 0);
    this.metrics.setStateGauge(rt.link.name, state);
    const level = state === 'down' || state === 'blocked' ? 'warn' : 'info';
    this.o.log[level]({ link: rt.link.name, state, ...(error ? { reason: error } : {}) }, `sync link ${state}`);
    this.updatePrimaryDown();
    if (connected) this.drain?.wake();
    const prefix = this.o.topicPrefix ?? 'outpost';
    this.o.bus
      ?.publish(
        `${prefix}/sync/status`,
        JSON.stringify({
          links: this.links.map((l) => ({ name: l.link.name, state: stateOf(l), lastError: lastErrorOf(l) })),
          t: this.o.clock.now(),
        }),
        { retain: true },
      )
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
    const ack = await this.downlink.handle(cmd, rt.link.name);
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
      const batch = await this.drain.priorityBatch(
        fb.link.maxBatchRecords,
        this.fallbackMemory.skip,
        Math.max(this.cursor.value, lastSeq - scan),
        scan,
        fb.link.fit?.bind(fb.link),
      );
      this.lastFallbackSend = now;
      if (!batch) return;
      const bytes = await this.fallbackMemory.send(fb.lane, batch, this.cursor.value);
      fb.batches++;
      fb.records += batch.records.length;
      fb.bytes += bytes;
      this.metrics.counters.records?.inc({ link: fb.link.name }, batch.records.length);
      this.metrics.counters.bytes?.inc({ link: fb.link.name }, bytes);
    } catch (err) {
      const e = toOutpostError(err);
      fb.errors++;
      this.metrics.counters.errors?.inc({ link: fb.link.name, code: e.code });
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
}
