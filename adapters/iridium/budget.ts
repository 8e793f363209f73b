import { join } from 'node:path';
import type { Clock } from '../../runtime/clock.js';
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
}

interface BudgetState {
  day: string;
  today: number;
  month: string;
  monthTotal: number;
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
    if (this.state.day !== day) this.state = { ...this.state, day, today: 0 };
  }

  /** Whether `credits` more may be spent on a message of this priority now. */
  allows(credits: number, priority: Priority): boolean {
    this.roll();
    const { dailyCredits, monthlyCredits, alarmReserve, historyShare } = this.config;
    if (monthlyCredits !== undefined && this.state.monthTotal + credits > monthlyCredits) return false;
    const limit =
      priority === 'alarm' ? dailyCredits : priority === 'latest' ? dailyCredits - alarmReserve : (dailyCredits - alarmReserve) * historyShare;
    return this.state.today + credits <= limit;
  }

  async record(credits: number): Promise<void> {
    this.roll();
    this.state = { ...this.state, today: this.state.today + credits, monthTotal: this.state.monthTotal + credits };
    await writeJsonState(this.file, this.state);
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
