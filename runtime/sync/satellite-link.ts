import { OutpostError, toOutpostError } from '../../core/errors.js';
import './errors.js';
import type { Logger } from '../log.js';
import type { Clock } from '../../core/clock.js';
import type { OutboxRecord } from '../../storage/store.js';
import type { IridiumLinkConfig } from './config.js';
import { LinkBase, type Batch, type DownlinkAck, type Link, type LinkState, type StorageReport } from './link.js';
import type { SatelliteDirectory, SatelliteModem, SatelliteMt, SatellitePriority } from './satellite.js';

export interface SatelliteLinkOptions {
  config: IridiumLinkConfig;
  gatewayId: string;
  log: Logger;
  clock: Clock;
  directory: SatelliteDirectory;
}

/**
 * Modem states in which a queued message goes out by itself (backoff/waiting: later, but
 * without help). `budget` too: one unaffordable message puts the modem there, yet alarms
 * still have their reserve; `send` checks the budget for each message itself.
 */
const OPERATIONAL = new Set(['idle', 'session', 'backoff', 'waiting', 'budget']);
/** Billing unit of Iridium SBD (RockBLOCK credit): what `affordableBytes` rounds to. */
const CREDIT_BYTES = 50;
/** MT messages whose acknowledgement is still being collected, at most. */
const MAX_PENDING_ACKS = 64;

interface PendingAck {
  results: Array<string | undefined>;
  remaining: number;
}

/**
 * The Iridium SBD modem of an `iridium` adapter as the sync fallback link. The service
 * hands it priority candidates (alarms, then latest values); `fit` keeps those the
 * compact codec carries and cuts them to one MO message the credit budget allows; `send`
 * encodes them (codec version 2: every reading with its outbox sequence number, so the
 * receiver drops them when the primary backfills) and resolves on SBD MO success.
 *
 * Downlink: authenticated MT setpoints become `DownlinkCommand`s (same validation as a
 * local write, via `Downlink.handle`); once every op of an MT message has a result, one
 * acknowledgement MO message (`adapters/iridium/mo-ack.ts`) reports them.
 *
 * Storage status: `reportStorage` hands the gateway's storage state to the modem, which sends
 * it first, in the alarm class (`adapters/iridium/mo-storage.ts`).
 */
export class SatelliteLink extends LinkBase implements Link {
  readonly name: string;
  readonly role = 'fallback' as const;
  /** A 340-byte message holds at most 340 × 8 readings (a null reading takes one bit); `fit` decides. */
  readonly maxBatchRecords = 340 * 8;
  private modem: SatelliteModem | undefined;
  private readonly detach: Array<() => void> = [];
  private unwatch: (() => void) | undefined;
  /** Records `fit` classed as alarms: a message carrying one may use the alarm reserve. */
  private readonly alarms = new WeakSet<OutboxRecord>();
  private readonly pendingAcks = new Map<number, PendingAck>();
  private warnedForwarding = false;
  /** The storage state reported and not yet handed to a modem (none was attached). */
  private storagePending: StorageReport | undefined;
  /** Whether a modem was told the storage state since start (the first one is told even when nothing was reported). */
  private storageTold = false;

  constructor(private readonly o: SatelliteLinkOptions) {
    super();
    this.name = o.config.name;
  }

  async start(): Promise<void> {
    if (this.unwatch) return;
    this.setState('connecting', `waiting for the iridium adapter "${this.o.config.adapter}"`);
    this.unwatch = this.o.directory.watch(this.o.gatewayId, this.o.config.adapter, (modem) => (modem ? this.attach(modem) : this.release()));
  }

  async stop(): Promise<void> {
    this.unwatch?.();
    this.unwatch = undefined;
    this.release();
    this.pendingAcks.clear();
    this.setState('stopped');
  }

  /**
   * Of `ordered` (priority order: alarms newest first, then latest values), the records
   * one message carries: those the codec takes, as many as fit in `messageBytes` and in
   * what the budget still allows today. Alarms may use the alarm reserve; when that
   * message would be larger than latest values may spend, it carries alarms only.
   */
  fit(ordered: readonly OutboxRecord[], isAlarm: (r: OutboxRecord) => boolean): OutboxRecord[] {
    const m = this.modem;
    if (!m) return [];
    const carried = ordered.filter((r) => m.carries(r));
    if (carried.length < ordered.length) {
      this.o.log.debug(
        { link: this.name, skipped: ordered.length - carried.length },
        'records not in the Iridium codec table (or of another type) stay for the primary link',
      );
    }
    if (carried.length === 0) return [];
    const alarms = carried.filter(isAlarm);
    for (const r of alarms) this.alarms.add(r);
    // Nothing affordable: pack a full message anyway; `send` refuses it with IRIDIUM_BUDGET,
    // which the service counts and shows as the link's last error.
    const latestCap = this.affordableBytes(m, 'latest');
    if (alarms.length === 0) return carried.slice(0, m.pack(carried, latestCap || this.o.config.messageBytes).count);
    const alarmCap = this.affordableBytes(m, 'alarm') || this.o.config.messageBytes;
    const packed = m.pack(carried, alarmCap);
    if (packed.bytes.length <= latestCap) return carried.slice(0, packed.count);
    // Latest values may not spend that much: the alarm reserve goes to alarms only.
    return alarms.slice(0, m.pack(alarms, alarmCap).count);
  }

  /**
   * Storage went read-only or recovered: the modem sends it as a small alarm-class MO message
   * (adapters/iridium/mo-storage.ts), from the alarm reserve if need be, whether or not the
   * link is the fallback now — the outbox cannot carry this alarm, and on a site with only the
   * satellite nothing else would. Kept here until a modem is attached.
   */
  reportStorage(storage: StorageReport): void {
    this.storagePending = storage;
    this.tellStorage();
  }

  private tellStorage(): void {
    const m = this.modem;
    if (!m || (this.storagePending === undefined && this.storageTold)) return;
    const storage = this.storagePending;
    this.storagePending = undefined;
    this.storageTold = true;
    m.reportStorage(storage).then(
      () => {
        if (storage) this.o.log.info({ link: this.name, storage: storage.state }, 'storage state queued for the satellite (alarm class)');
      },
      (err: unknown) =>
        this.o.log.warn(
          { link: this.name, storage: storage?.state, code: toOutpostError(err).code, reason: toOutpostError(err).message },
          'storage state queued for the satellite but not saved: a restart before it goes loses it',
        ),
    );
  }

  async send(batch: Batch): Promise<number> {
    const m = this.modem;
    if (!m || this.current !== 'up') throw new OutpostError('SYNC_LINK_DOWN', `Iridium link ${this.name}: ${this.error ?? 'modem not ready'}`);
    if (!batch.records.every((r) => m.carries(r))) {
      throw new OutpostError('IRIDIUM_CODEC', `batch ${batch.key} holds records the Iridium codec table does not carry`);
    }
    const { bytes, count } = m.pack(batch.records, this.o.config.messageBytes);
    if (count < batch.records.length) {
      throw new OutpostError('IRIDIUM_MO_SIZE', `batch ${batch.key}: ${batch.records.length} records do not fit in ${this.o.config.messageBytes} bytes`);
    }
    const priority: SatellitePriority = batch.records.some((r) => this.alarms.has(r)) ? 'alarm' : 'latest';
    const credits = m.creditsFor(bytes.length);
    if (!m.allows(credits, priority)) {
      this.error = `budget exhausted: ${credits} credit(s) for ${priority} data not available today`;
      throw new OutpostError('IRIDIUM_BUDGET', this.error);
    }
    try {
      await m.sendPacked(bytes, priority);
    } catch (err) {
      const e = toOutpostError(err);
      this.error = e.message;
      throw e;
    }
    this.error = undefined;
    this.o.log.info({ link: this.name, records: batch.records.length, bytes: bytes.length, credits, priority }, 'priority data sent over the satellite');
    return bytes.length;
  }

  private attach(modem: SatelliteModem): void {
    this.release();
    this.modem = modem;
    this.detach.push(modem.onState((state, detail) => this.onModemState(state, detail)));
    if (this.o.config.downlink) this.detach.push(modem.setCommandSink((mt) => this.onMt(mt)));
    if (modem.forwarding && !this.warnedForwarding) {
      this.warnedForwarding = true;
      this.o.log.warn(
        { link: this.name, adapter: this.o.config.adapter },
        'the iridium adapter also forwards readings on its own (forward: true): set forward: false so only the sync fallback spends credits',
      );
    }
    this.onModemState(modem.state);
    this.tellStorage();
  }

  private release(): void {
    for (const un of this.detach.splice(0)) un();
    if (!this.modem) return;
    this.modem = undefined;
    if (this.current !== 'stopped') this.setState('connecting', `iridium adapter "${this.o.config.adapter}" is not running`);
  }

  private onModemState(state: string, detail?: string): void {
    if (OPERATIONAL.has(state)) this.setState('up');
    else if (state === 'starting') this.setState('connecting', 'modem starting');
    else this.setState('down', detail ? `${state}: ${detail}` : state);
  }

  /** Like the base, but an error comes with the state, and `up` reports and keeps none. */
  protected override setState(state: LinkState, error?: string): void {
    if (state !== 'up' && error) this.error = error;
    if (state === this.current) return;
    // Back up: why it was not is history (a budget error raised while up stays until a send succeeds).
    if (state === 'up') this.error = undefined;
    this.current = state;
    this.emit('state', state, state === 'up' ? undefined : error);
  }

  /** Largest message (bytes, whole credits) the budget allows now for this priority; 0 = none. */
  private affordableBytes(m: SatelliteModem, priority: SatellitePriority): number {
    let credits = Math.ceil(this.o.config.messageBytes / CREDIT_BYTES);
    while (credits > 0 && !m.allows(credits, priority)) credits--;
    return Math.min(this.o.config.messageBytes, credits * CREDIT_BYTES);
  }

  private onMt(mt: SatelliteMt): void {
    const pending: PendingAck = { results: new Array<string | undefined>(mt.commands.length), remaining: mt.commands.length };
    if (this.pendingAcks.size >= MAX_PENDING_ACKS) {
      const [oldest] = this.pendingAcks.keys();
      this.pendingAcks.delete(oldest!);
      this.o.log.warn({ link: this.name, counter: oldest }, 'MT acknowledgement abandoned: too many MT messages waiting for results');
    }
    this.pendingAcks.set(mt.counter, pending);
    mt.commands.forEach((c, i) => {
      if (c.kind === 'command') {
        // Named modem commands (mailbox_check, send_now) were run by the adapter itself.
        this.settle(mt.counter, i, 'ok');
        return;
      }
      // Named by its counter; `ref` (op 0x05) ties it to central's requestId, so a copy of a command
      // applied over another link is answered from the downlink's memory, not applied again.
      const body: Record<string, unknown> = { requestId: `iridium:${this.o.config.adapter}:${mt.counter}.${i}`, id: c.id };
      if (c.kind === 'schedule') body.entries = c.entries;
      else {
        body.v = c.v;
        if (c.expiresInS !== undefined) body.expires = this.o.clock.now() + c.expiresInS * 1000;
      }
      this.emit('command', {
        source: `iridium:${this.o.config.adapter}:mt${mt.mtmsn}`,
        name: c.kind,
        ...(c.ref !== undefined ? { ref: c.ref } : {}),
        payload: Buffer.from(JSON.stringify(body)),
        reply: (ack: DownlinkAck) => this.settle(mt.counter, i, ack.ok ? 'ok' : (ack.error?.code ?? 'OTHER')),
      });
    });
  }

  /** Records one op's result; with the last one in, sends the acknowledgement MO message. */
  private settle(counter: number, op: number, result: string): void {
    const pending = this.pendingAcks.get(counter);
    if (!pending || pending.results[op] !== undefined) return;
    pending.results[op] = result;
    if (--pending.remaining > 0) return;
    this.pendingAcks.delete(counter);
    const results = pending.results as string[];
    const m = this.modem;
    if (!m) {
      this.o.log.warn({ link: this.name, counter, results }, 'MT acknowledgement not sent: the iridium adapter is not running');
      return;
    }
    const bytes = m.encodeAck([{ counter, results }]);
    const credits = m.creditsFor(bytes.length);
    if (!m.allows(credits, 'latest')) {
      this.o.log.warn({ link: this.name, counter, results }, 'MT acknowledgement not sent: the credit budget is spent for today');
      return;
    }
    // Not awaited: the modem delivers MT messages from inside its session loop, which
    // must go on to send this acknowledgement.
    m.sendPacked(bytes, 'latest').then(
      () => this.o.log.info({ link: this.name, counter, results }, 'MT commands acknowledged over the satellite'),
      (err: unknown) =>
        this.o.log.warn({ link: this.name, counter, code: toOutpostError(err).code, reason: toOutpostError(err).message }, 'MT acknowledgement not sent'),
    );
  }
}
