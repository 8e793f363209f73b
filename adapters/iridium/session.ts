import { EventEmitter } from 'node:events';
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../runtime/log.js';
import { OutpostError, toOutpostError } from '../../core/errors.js';
import './errors.js';
import { PRIORITIES, type CreditBudget, type Priority } from './budget.js';
import { creditsFor } from './codec.js';
import { classifyMoStatus } from './mo-status.js';
import type { IridiumModem, SbdixResult } from './modem.js';

/**
 * Session policy: when to open an SBD session, how long to wait, which message goes
 * first, and what may be spent on fetching MT messages. What an MO status means is in
 * mo-status.ts (the +SBDIX MO status table of the ISU AT Command Reference).
 */

export { classifyMoStatus, type MoClass } from './mo-status.js';

export type LinkState = 'starting' | 'idle' | 'session' | 'backoff' | 'waiting' | 'no_signal' | 'budget' | 'account_error' | 'down' | 'stopped';

export interface LinkOptions {
  /** Minimum +CSQ bars before a session is tried. */
  minSignal: number;
  /** Wait between signal checks while below `minSignal`. */
  signalRetryMs: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  /** MO status 36/38: "wait 3 minutes". */
  registrationWaitMs: number;
  /** MO status 15/16 (account) and 33/34 (hardware): wait this long before trying again. */
  accountRetryMs: number;
  /** Budget refused everything queued: look again after this long (the day may have rolled over). */
  budgetRetryMs: number;
  /** MT messages drained per wake-up while the gateway reports more queued. */
  maxMtPerWake: number;
  /** Messages kept per priority; the oldest is dropped beyond it. */
  queueLimit: number;
  /** Attempts to re-read an MT buffer with a bad checksum. */
  mtReadAttempts: number;
  random?: () => number;
}

const DEFAULT_LINK_OPTIONS: LinkOptions = {
  minSignal: 2,
  signalRetryMs: 30_000,
  backoffInitialMs: 20_000,
  backoffMaxMs: 15 * 60_000,
  registrationWaitMs: 3 * 60_000,
  accountRetryMs: 60 * 60_000,
  budgetRetryMs: 10 * 60_000,
  maxMtPerWake: 10,
  queueLimit: 32,
  mtReadAttempts: 3,
};

export interface MtInfo {
  mtmsn: number;
  queued: number;
}

export type MtHandler = (bytes: Buffer, info: MtInfo) => void | Promise<void>;

interface Outgoing {
  bytes: Buffer;
  priority: Priority;
  resolve(result: { momsn: number; credits: number }): void;
  reject(err: Error): void;
}

/**
 * MO messages packed at session time from readings waiting elsewhere (the stand-alone
 * forwarding queue, mo-queue.ts), so that what waits through an outage is packed once,
 * when it can go, not message by message as it came.
 */
export interface MoSource {
  /** Messages waiting (one while one is in doubt or anything is ready), for `queued`. */
  readonly size: number;
  /** Priority of the message it would send now within the budget; undefined: nothing affordable. */
  ready(budget: CreditBudget): Priority | undefined;
  /**
   * The message to send now: the one of an earlier attempt (in doubt: it may have gone),
   * else a new one packed within the budget and written ahead durably.
   */
  take(budget: CreditBudget): Promise<{ bytes: Buffer; priority: Priority } | undefined>;
  /** The satellite gateway took the message (MO status 0-4). */
  sent(): Promise<void>;
  /** The message can never go (fatal MO status, size refused): dropped with this reason. */
  drop(reason: OutpostError): Promise<void>;
}

/** What the loop sends next: a queued message or the source's. */
type Pick = { from: 'queue'; m: Outgoing } | { from: 'source'; priority: Priority };

/**
 * The Iridium link: a bounded priority queue of MO messages, a budget, and the loop
 * that drives the modem. Also the API the sync link uses: `send(bytes, priority)` and
 * `onMt(handler)`.
 */
export class SbdLink extends EventEmitter {
  readonly options: LinkOptions;
  state: LinkState = 'starting';
  signal = -1;
  lastMoStatus: number | undefined;
  dropped = 0;
  /** SBDRING alerts seen since start, and those that came while the MT share was spent. */
  rings = 0;
  ringsDeferred = 0;
  private source: MoSource | undefined;
  private readonly queues: Record<Priority, Outgoing[]> = { alarm: [], latest: [], history: [] };
  private readonly mtHandlers = new Set<MtHandler>();
  private wake: (() => void) | undefined;
  private ringPending = false;
  private mailboxPending = false;
  private mtToDrain = 0;
  private attempts = 0;
  private reinit = false;
  private controller = new AbortController();
  private loop: Promise<void> | undefined;
  private readonly random: () => number;

  constructor(
    private readonly modem: IridiumModem,
    private readonly budget: CreditBudget,
    private readonly clock: Clock,
    private readonly log: Logger,
    options: Partial<LinkOptions> = {},
  ) {
    super();
    this.options = { ...DEFAULT_LINK_OPTIONS, ...options };
    this.random = this.options.random ?? Math.random;
    modem.on('ring', () => {
      this.ringPending = true;
      this.rings++;
      // Whoever knows the IMEI can make the modem ring (by queueing MT at the gateway):
      // rings beyond the MT share are counted, and answered by the next MO session
      // (+SBDIXA with MO data, ISU AT Command Reference) instead of one of their own.
      if (!this.budget.allowsMt(this.mtFetchCredits())) this.ringsDeferred++;
      this.emit('rings', this.rings, this.ringsDeferred);
      this.kick();
    });
  }

  /** Messages packed from `source` at session time go with the queued ones, by priority. */
  setSource(source: MoSource): void {
    this.source = source;
    this.kick();
  }

  /** The source has something new (or the budget may allow more): look again now. */
  notify(): void {
    this.emit('queue', this.queued);
    this.kick();
  }

  /** Queues an MO message (1..340 bytes). Resolves once the gateway has it. */
  send(bytes: Uint8Array, priority: Priority = 'latest'): Promise<{ momsn: number; credits: number }> {
    if (bytes.length < 1 || bytes.length > 340) {
      return Promise.reject(new OutpostError('IRIDIUM_MO_SIZE', `MO message is ${bytes.length} bytes; 1..340 allowed`));
    }
    return new Promise((resolve, reject) => {
      const q = this.queues[priority];
      if (q.length >= this.options.queueLimit) {
        const old = q.shift()!;
        this.dropped++;
        old.reject(new OutpostError('IRIDIUM_QUEUE_FULL', `${priority} queue is full (${this.options.queueLimit}); the oldest message was dropped`));
      }
      q.push({ bytes: Buffer.from(bytes), priority, resolve, reject });
      this.emit('queue', this.queued);
      this.kick();
    });
  }

  /** Registers an MT handler; returns the unsubscribe function. */
  onMt(handler: MtHandler): () => void {
    this.mtHandlers.add(handler);
    return () => this.mtHandlers.delete(handler);
  }

  /** A session without MO data to fetch MT messages (costs one credit). */
  mailboxCheck(): void {
    this.mailboxPending = true;
    this.kick();
  }

  /** Reads +CSQ now (free: no session) and reports a change. */
  async pollSignal(): Promise<number> {
    const bars = await this.modem.signalQuality();
    this.noteSignal(bars);
    return bars;
  }

  private noteSignal(bars: number): void {
    if (bars === this.signal) return;
    this.signal = bars;
    this.emit('signal', bars);
  }

  get queued(): number {
    return PRIORITIES.reduce((n, p) => n + this.queues[p].length, 0) + (this.source?.size ?? 0);
  }

  start(): void {
    if (this.loop) return;
    this.controller = new AbortController();
    this.loop = this.run(this.controller.signal).catch((err: unknown) => {
      if (this.controller.signal.aborted) return;
      this.emit('error', err);
    });
  }

  async stop(): Promise<void> {
    this.controller.abort(new OutpostError('ADAPTER_UNAVAILABLE', 'Iridium link stopped'));
    this.kick();
    await this.loop;
    this.loop = undefined;
    this.setState('stopped');
    for (const p of PRIORITIES) {
      for (const m of this.queues[p].splice(0)) m.reject(new OutpostError('ADAPTER_UNAVAILABLE', 'Iridium link stopped before the message was sent'));
    }
  }

  private kick(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private setState(state: LinkState, detail?: string): void {
    if (this.state === state) return;
    this.state = state;
    this.emit('state', state, detail);
  }

  private async sleep(ms: number, signal: AbortSignal, interruptible = false): Promise<void> {
    if (!interruptible) return this.clock.sleep(ms, signal);
    const woken = new Promise<void>((resolve) => (this.wake = resolve));
    await Promise.race([this.clock.sleep(ms, signal), woken]);
  }

  private nextMessage(): Pick | undefined {
    const fromSource = this.source?.ready(this.budget);
    for (const p of PRIORITIES) {
      const m = this.queues[p][0];
      if (m && this.budget.allows(creditsFor(m.bytes.length), p)) return { from: 'queue', m };
      if (fromSource === p) return { from: 'source', priority: p };
    }
    return undefined;
  }

  /**
   * What a session opened only for MT is let to cost: the mailbox check (one credit) and,
   * when the gateway is known to hold a message (ring alert, or +SBDIX reported MT queued),
   * at least one credit for it. Larger MT messages (up to 270 bytes, 6 credits) can still
   * take the share over by their size; they are counted, and no further fetch is made.
   */
  private mtFetchCredits(): number {
    return this.ringPending || this.mtToDrain > 0 ? 2 : 1;
  }

  private backoffMs(): number {
    const base = Math.min(this.options.backoffMaxMs, this.options.backoffInitialMs * 2 ** this.attempts);
    this.attempts++;
    // Randomised so many sites do not retry in step, within [base/2, base): never beyond
    // the configured maximum (base × [0.5, 1.5) went up to 1.5 × backoffMaxMs).
    return Math.round(base * (0.5 + 0.5 * this.random()));
  }

  private async run(signal: AbortSignal): Promise<void> {
    this.setState('idle');
    let deferredNoted = false;
    while (!signal.aborted) {
      const pick = this.nextMessage();
      const wantMt = this.ringPending || this.mailboxPending || this.mtToDrain > 0;
      // The alarm reserve is for MO alarms: a session only for MT must fit the MT share.
      const fetchMt = !pick && wantMt && this.budget.allowsMt(this.mtFetchCredits());
      if (!pick && !fetchMt) {
        if (wantMt && !deferredNoted) {
          deferredNoted = true;
          this.log.warn(
            { mtCreditsToday: this.budget.mtToday, rings: this.rings, ringsDeferred: this.ringsDeferred },
            'MT fetch deferred: the MT share of the credit budget is spent; the next MO session fetches it',
          );
        }
        if (this.queued > 0) {
          this.setState('budget', 'daily or monthly credit budget reached');
          await this.sleep(this.options.budgetRetryMs, signal, true).catch(() => undefined);
        } else if (wantMt) {
          // Nothing to send: look again later (a new day brings a new share); a new message wakes us.
          this.setState('idle');
          await this.sleep(this.options.budgetRetryMs, signal, true).catch(() => undefined);
        } else {
          this.setState('idle');
          await new Promise<void>((resolve) => {
            // One listener per idle wait, removed when woken: a long-running site goes idle
            // after every message, and listeners left behind would pile up.
            const onAbort = (): void => resolve();
            this.wake = () => {
              signal.removeEventListener('abort', onAbort);
              resolve();
            };
            signal.addEventListener('abort', onAbort, { once: true });
          });
        }
        continue;
      }
      deferredNoted = false;
      try {
        await this.attempt(pick, signal);
      } catch (err) {
        if (signal.aborted) return;
        const e = toOutpostError(err);
        this.log.warn({ code: e.code, reason: e.message }, 'Iridium session attempt failed');
        if (e.code === 'IRIDIUM_MO_SIZE' && pick) {
          await this.dropPick(pick, e);
          continue;
        }
        if (e.code === 'IRIDIUM_TIMEOUT' || e.code === 'IRIDIUM_PROTOCOL') this.reinit = true;
        this.setState('backoff', e.message);
        await this.sleep(this.backoffMs(), signal).catch(() => undefined);
      }
    }
  }

  private remove(m: Outgoing): void {
    const q = this.queues[m.priority];
    const i = q.indexOf(m);
    if (i >= 0) q.splice(i, 1);
    this.emit('queue', this.queued);
  }

  private async dropPick(pick: Pick, reason: OutpostError): Promise<void> {
    if (pick.from === 'queue') {
      this.remove(pick.m);
      pick.m.reject(reason);
      return;
    }
    await this.source!.drop(reason).catch((err: unknown) =>
      this.log.warn({ code: toOutpostError(err).code, reason: toOutpostError(err).message }, 'dropping a forwarding message was not recorded'),
    );
    this.emit('queue', this.queued);
  }

  private async attempt(pick: Pick | undefined, signal: AbortSignal): Promise<void> {
    if (this.reinit) {
      await this.modem.init();
      this.reinit = false;
    }
    const bars = await this.modem.signalQuality();
    this.noteSignal(bars);
    if (bars < this.options.minSignal) {
      this.setState('no_signal', `signal ${bars} below ${this.options.minSignal}`);
      await this.sleep(this.options.signalRetryMs, signal);
      return;
    }
    // Packed now, after the signal check: during an outage nothing is pinned in a message,
    // so what waits is packed together when the link is back.
    let bytes: Buffer | undefined;
    if (pick?.from === 'queue') bytes = pick.m.bytes;
    else if (pick) {
      bytes = (await this.source!.take(this.budget))?.bytes;
      if (!bytes) {
        // Nothing it could pack within the budget after all: look again later, not in a loop.
        this.setState('budget', 'no forwarding message fits in the credits left');
        await this.sleep(this.options.budgetRetryMs, signal, true);
        return;
      }
    }
    this.setState('session');
    if (bytes) await this.modem.writeMo(bytes);
    else await this.modem.clearBuffers(0); // a mailbox check must not resend an old MO buffer
    const answerRing = this.ringPending;
    const result = await this.modem.session(answerRing);
    this.lastMoStatus = result.moStatus;
    this.emit('session', result);
    const cls = classifyMoStatus(result.moStatus);
    if (cls.kind === 'success') {
      this.attempts = 0;
      this.ringPending = false;
      this.mailboxPending = false;
      // Every session is billed (RockBLOCK): the MO message per 50 bytes, or one credit for
      // a mailbox check, plus the MT message per 50 bytes. MT spend is counted in its share.
      const mtCredits = (bytes ? 0 : 1) + (result.mtStatus === 1 ? creditsFor(result.mtLength) : 0);
      const credits = (bytes ? creditsFor(bytes.length) : 0) + mtCredits;
      try {
        await this.budget.record(credits, mtCredits);
      } catch (err) {
        // Sent and billed: the spend is counted in memory all the same. Failing the attempt here
        // would send the message again, billed each time: on a full disk (issue 19) copies of
        // one alarm would spend the day's budget, reserve included.
        const e = toOutpostError(err);
        this.log.warn({ code: e.code, reason: e.message, credits }, 'credit spend not saved (credits.json): a restart before the next save forgets it');
      }
      this.emit('credits', this.budget.today, this.budget.month, this.budget.mtToday);
      // Sent and paid: done, whatever happens next. (Resolving only after the buffer clear
      // below re-sent and re-billed the message when AT+SBDD0 failed.)
      if (pick?.from === 'queue') {
        this.remove(pick.m);
        pick.m.resolve({ momsn: result.momsn, credits });
      } else if (pick) {
        await this.source!.sent().catch((err: unknown) =>
          this.log.warn(
            { code: toOutpostError(err).code, reason: toOutpostError(err).message },
            'forwarding queue not saved after a sent message; a restart may send it again',
          ),
        );
        this.emit('queue', this.queued);
      }
      // Clear the MO buffer after a success so a later mailbox check cannot send it twice;
      // if this fails, the next mailbox check clears it first and the next message overwrites it.
      try {
        await this.modem.clearBuffers(0);
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'AT+SBDD0 after a successful session failed; the buffer is cleared before the next session');
      }
      await this.receiveMt(result);
      this.setState('idle');
      return;
    }
    this.log.info({ moStatus: result.moStatus, kind: cls.kind, reason: cls.reason }, 'Iridium session did not send');
    switch (cls.kind) {
      case 'fatal':
        await this.modem.clearBuffers(0);
        if (pick) await this.dropPick(pick, new OutpostError('IRIDIUM_SESSION_FAILED', `MO status ${result.moStatus}: ${cls.reason}; message dropped`));
        return;
      case 'wait':
        this.setState('waiting', cls.reason);
        await this.sleep(this.options.registrationWaitMs, signal);
        return;
      case 'account':
      case 'hardware':
        this.setState(cls.kind === 'account' ? 'account_error' : 'down', cls.reason);
        this.emit(
          'alert',
          new OutpostError(cls.kind === 'account' ? 'IRIDIUM_ACCOUNT' : 'IRIDIUM_SESSION_FAILED', `MO status ${result.moStatus}: ${cls.reason}`),
        );
        await this.sleep(this.options.accountRetryMs, signal);
        return;
      default:
        this.setState('backoff', cls.reason);
        await this.sleep(this.backoffMs(), signal);
    }
  }

  /** Reads the MT buffer after a successful session and keeps draining while the gateway has more. */
  private async receiveMt(result: SbdixResult): Promise<void> {
    if (result.mtStatus === 1) {
      let bytes: Buffer | undefined;
      for (let i = 0; i < this.options.mtReadAttempts && !bytes; i++) {
        try {
          bytes = await this.modem.readMt();
        } catch (err) {
          const e = toOutpostError(err);
          if (e.code !== 'IRIDIUM_CHECKSUM' && e.code !== 'IRIDIUM_TIMEOUT') throw e;
          this.log.warn({ code: e.code, attempt: i + 1 }, 'MT read failed; reading the buffer again');
        }
      }
      if (!bytes) throw new OutpostError('IRIDIUM_CHECKSUM', `MT message ${result.mtmsn} could not be read intact`);
      await this.modem.clearBuffers(1);
      for (const h of this.mtHandlers) {
        try {
          await h(bytes, { mtmsn: result.mtmsn, queued: result.mtQueued });
        } catch (err) {
          // One handler's failure must not stop the others or the drain.
          this.emit('mt-error', toOutpostError(err), result.mtmsn);
        }
      }
    }
    if (result.mtQueued > 0) {
      this.mtToDrain = this.mtToDrain > 0 ? this.mtToDrain - 1 : this.options.maxMtPerWake;
      if (this.mtToDrain === 0) this.log.warn({ queued: result.mtQueued }, 'MT drain limit reached; the rest waits for the next session');
    } else this.mtToDrain = 0;
  }
}
