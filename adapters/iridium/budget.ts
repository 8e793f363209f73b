import { join } from 'node:path';
import type { Clock } from '../../core/clock.js';
import { readJsonState, writeJsonState } from '../../runtime/durable-file.js';

/** What a message is: alarms go first, then latest values, then history (backfill). */
export type Priority = 'alarm' | 'latest' | 'history';
export const PRIORITIES: readonly Priority[] = ['alarm', 'latest', 'history'];

export interface BudgetConfig {
  /** Credits (50-byte units) that may be spent per local day. */
  dailyCredits: number;
  /** Optional hard cap per calendar month. */
  monthlyCredits?: number;
  /** Part of the daily budget only alarms may use. */
  alarmReserve: number;
  /** Share (0..1) of the non-reserved daily budget that history may use, so latest values keep room. */
  historyShare: number;
  /**
   * Credits per day that sessions opened only to fetch MT messages (ring alerts, mailbox
   * checks, draining the gateway's MT queue) may spend, MT message credits included. Anyone
   * who knows the IMEI can queue MT messages at the Iridium gateway, so without a share of
   * their own they could spend the whole day, alarm reserve included. Never touches the
   * alarm reserve either. Default `DEFAULT_MT_CREDITS_PER_DAY`.
   */
  mtCreditsPerDay?: number;
}

/** Two or three MT fetches a day (a mailbox-check credit plus a small MT message each). */
export const DEFAULT_MT_CREDITS_PER_DAY = 6;

interface BudgetState {
  day: string;
  today: number;
  month: string;
  monthTotal: number;
  /** Of `today`, credits spent on MT (fetch sessions and MT messages). Absent in files written before the share existed. */
  mtToday?: number;
}

/**
 * Credits used today and this month, persisted in the adapter's data directory so a
 * restart does not reset the spend. Days and months are local to the gateway's timezone.
 */
export class CreditBudget {
  private constructor(
    private readonly file: string,
    readonly config: BudgetConfig,
    private readonly clock: Clock,
    private readonly dateFormat: Intl.DateTimeFormat,
    private state: BudgetState,
  ) {}

  static async open(dataDir: string, config: BudgetConfig, clock: Clock, timezone: string): Promise<CreditBudget> {
    const file = join(dataDir, 'credits.json');
    const fmt = new Intl.DateTimeFormat('en-CA', { timeZone: timezone, year: 'numeric', month: '2-digit', day: '2-digit' });
    const state = await readJsonState<BudgetState>(file, { day: '', today: 0, month: '', monthTotal: 0 });
    const budget = new CreditBudget(file, config, clock, fmt, state);
    budget.roll();
    return budget;
  }

  private roll(): void {
    const day = this.dateFormat.format(this.clock.now()); // YYYY-MM-DD
    const month = day.slice(0, 7);
    if (this.state.month !== month) this.state = { ...this.state, month, monthTotal: 0 };
    if (this.state.day !== day) this.state = { ...this.state, day, today: 0, mtToday: 0 };
  }

  /** Whether `credits` more may be spent on a message of this priority now. */
  allows(credits: number, priority: Priority): boolean {
    this.roll();
    const { dailyCredits, monthlyCredits, alarmReserve, historyShare } = this.config;
    if (monthlyCredits !== undefined && this.state.monthTotal + credits > monthlyCredits) return false;
    const limit = priority === 'alarm' ? dailyCredits : priority === 'latest' ? dailyCredits - alarmReserve : (dailyCredits - alarmReserve) * historyShare;
    return this.state.today + credits <= limit;
  }

  /**
   * Whether a session opened only to fetch MT may spend `credits` now: within the MT share,
   * the monthly cap, and outside the alarm reserve (`dailyCredits - alarmReserve`).
   */
  allowsMt(credits: number): boolean {
    this.roll();
    const { dailyCredits, monthlyCredits, alarmReserve, mtCreditsPerDay = DEFAULT_MT_CREDITS_PER_DAY } = this.config;
    if (monthlyCredits !== undefined && this.state.monthTotal + credits > monthlyCredits) return false;
    if ((this.state.mtToday ?? 0) + credits > mtCreditsPerDay) return false;
    return this.state.today + credits <= dailyCredits - alarmReserve;
  }

  /** Records a paid session: `credits` in all, of which `mtCredits` were spent on MT. */
  async record(credits: number, mtCredits = 0): Promise<void> {
    this.roll();
    this.state = {
      ...this.state,
      today: this.state.today + credits,
      monthTotal: this.state.monthTotal + credits,
      mtToday: (this.state.mtToday ?? 0) + mtCredits,
    };
    await writeJsonState(this.file, this.state);
  }

  /** Credits spent on MT today (part of `today`). */
  get mtToday(): number {
    this.roll();
    return this.state.mtToday ?? 0;
  }

  get today(): number {
    this.roll();
    return this.state.today;
  }

  get month(): number {
    this.roll();
    return this.state.monthTotal;
  }
}
