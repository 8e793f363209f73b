/**
 * What the central system tells about itself: each charging plan (info log when the allocations
 * change, the plan datapoints) and the adapter status, at most every 500 ms. Split from
 * central.ts: it owns only its own bookkeeping (timer, last plan logged) and reads the rest.
 */
import type { Value } from '../../core/datapoint.js';
import type { CentralSystem } from './central.js';
import { connectorBound } from './connector-count.js';
import type { Plan } from './load-manager.js';

export class PlanStatusReporter {
  private statusTimer: NodeJS.Timeout | undefined;
  /** Allocations of the last plan logged at info, to log only changes there. */
  private lastPlanSignature: string | undefined;
  private planDatapointsRegistered = false;

  constructor(private readonly cs: CentralSystem) {}

  /** The LoadManager's onPlan hook: log, publish the plan datapoints, schedule the status. */
  onPlan(plan: Plan & { t: number; trigger: string }): void {
    // Info only when what the sessions get changes; every other round (each meter reading) is debug.
    const signature = plan.allocations.map((a) => `${a.key}=${a.limitA}`).join(',');
    const changed = signature !== this.lastPlanSignature;
    this.lastPlanSignature = signature;
    this.cs.ctx.log[changed ? 'info' : 'debug'](
      {
        trigger: plan.trigger,
        reason: plan.reason,
        meterState: plan.meterState,
        availableA: plan.availableA,
        allocatedA: plan.allocatedA,
        allocations: plan.allocations.map((a) => ({ session: a.key, limitA: a.limitA, reason: a.reason })),
      },
      changed ? 'charging plan changed' : 'charging plan unchanged',
    );
    const publish = async (): Promise<void> => {
      if (!this.planDatapointsRegistered) {
        await this.cs.ctx.datapoints.register([
          { id: this.cs.ids.plan, type: 'json', description: 'Latest load management plan with reasons' },
          { id: this.cs.ids.allocated, type: 'number', unit: 'A', description: 'Current granted to EV charging on the most loaded phase' },
        ]);
        this.planDatapointsRegistered = true;
      }
      await this.cs.publish([
        { id: this.cs.ids.plan, v: plan as unknown as Value, t: plan.t },
        { id: this.cs.ids.allocated, v: Math.max(...plan.allocatedA), t: plan.t },
      ]);
    };
    publish().catch((err) => this.cs.warnOnce('plan-publish', { reason: (err as Error).message }, 'charging plan not published'));
    this.scheduleStatus();
  }

  /** Adapter status at most every 500 ms: counters, chargers, plan. */
  scheduleStatus(): void {
    if (this.statusTimer) return;
    this.statusTimer = setTimeout(() => {
      this.statusTimer = undefined;
      this.reportStatus();
    }, 500);
    this.statusTimer.unref();
  }

  reportStatus(): void {
    const chargers = [...this.cs.chargers.values()].map((c) => ({
      id: c.identity,
      online: c.online,
      profile: c.profile.name,
      numberOfConnectors: connectorBound(c).count,
      numberOfConnectorsFrom: connectorBound(c).source,
      connectors: Object.fromEntries([...c.connectors.values()].map((k) => [k.id, k.status ?? 'unknown'])),
    }));
    const offline = chargers.filter((c) => !c.online && this.cs.configFor(c.id));
    const plan = this.cs.loadManager?.lastPlan;
    this.cs.ctx.setStatus({
      degraded: offline.length > 0 || plan?.meterState === 'stale',
      message: [
        `${chargers.filter((c) => c.online).length}/${chargers.length} chargers online, ${this.cs.sessions.openSessions().length} sessions`,
        plan ? `plan: ${plan.reason}` : undefined,
      ]
        .filter(Boolean)
        .join('; '),
      info: {
        counters: this.cs.counters,
        chargers,
        ...(plan
          ? {
              plan: {
                t: plan.t,
                trigger: plan.trigger,
                reason: plan.reason,
                meterState: plan.meterState,
                availableA: plan.availableA,
                allocatedA: plan.allocatedA,
                allocations: plan.allocations,
              },
            }
          : {}),
      },
    });
  }

  stop(): void {
    if (this.statusTimer) clearTimeout(this.statusTimer);
    this.statusTimer = undefined;
  }
}
