/**
 * A car behind a simulated charge point, as a grid meter sees it: it follows a new limit only
 * after a delay (the EV reads the new PWM duty cycle and its onboard charger reacts; IEC 61851-1
 * allows 5 s, 1.5 s is typical) and ramps to it, and draws nothing below 6 A (IEC 61851-1: the
 * minimum duty cycle). Time is real (`now`), integrated lazily whenever the draw is asked for.
 */
export interface CarResponse {
  delayMs: number;
  rampUpAPerS: number;
  rampDownAPerS: number;
}

const STEP_MS = 50;

export class CarFollower {
  private limits: Array<{ at: number; limitA: number }>;
  private currentA = 0;
  private at: number;

  constructor(
    private readonly response: CarResponse,
    initialLimitA: number,
    private readonly now: () => number = Date.now,
  ) {
    this.at = now();
    this.limits = [{ at: this.at, limitA: initialLimitA }];
  }

  /** The charger's limit changed now. */
  setLimit(limitA: number, capA: number): void {
    this.advance(capA);
    this.limits.push({ at: this.now(), limitA });
    // Only the limit in force `delayMs` ago and later ones still matter.
    const horizon = this.now() - this.response.delayMs;
    while (this.limits.length > 1 && this.limits[1]!.at <= horizon) this.limits.shift();
  }

  /** What the car draws now (A per phase), `capA` being what it may take at most (its own maximum, 0 when full). */
  drawA(capA: number): number {
    this.advance(capA);
    return this.currentA;
  }

  private advance(capA: number): void {
    const end = this.now();
    for (let t = this.at + STEP_MS; t <= end; t += STEP_MS) {
      let limit = this.limits[0]!.limitA;
      for (const l of this.limits) if (l.at <= t - this.response.delayMs) limit = l.limitA;
      const target = Math.min(limit, capA) < 6 ? 0 : Math.min(limit, capA);
      const up = target > this.currentA;
      const rate = ((up ? this.response.rampUpAPerS : this.response.rampDownAPerS) * STEP_MS) / 1000;
      this.currentA = up ? Math.min(target, this.currentA + rate) : Math.max(target, this.currentA - rate);
      this.at = t;
    }
  }
}
