/**
 * The charging profiles that keep a site safe when chargers lose the gateway: a TxDefaultProfile
 * at the minimum current on every (re)connect, and a ChargePointMaxProfile per charger with every
 * plan. Split from central.ts: it owns what each charger confirmed (appliedCaps) and nothing else.
 */
import { toOutpostError } from '../../core/errors.js';
import type { CentralSystem } from './central.js';
import type { Plan } from './load-manager.js';
import { chargePointMaxProfile, limitInUnit, txDefaultProfile } from './profiles.js';

export class SafetyProfiles {
  /** ChargePointMaxProfile limit (A) each connected charger confirmed; cleared on reconnect (CentralSystem.attach). */
  readonly appliedCaps = new Map<string, number>();

  constructor(private readonly cs: CentralSystem) {}

  /**
   * Sent once per connection when load management is on: a TxDefaultProfile at the minimum
   * current (IEC 61851-1: 6 A) on connector 0, so every new session starts low until the plan
   * raises it with a TxProfile (OCPP 1.6 §3.13.2: TxProfile wins over TxDefaultProfile). The
   * ChargePointMaxProfile follows with the first plan (applyChargerCaps).
   */
  async sendSafetyProfiles(identity: string): Promise<void> {
    const charger = this.cs.chargers.get(identity);
    if (!this.cs.loadManager || !charger?.online) return;
    const phases = this.cs.phasesOf(charger).length;
    const unit = charger.profile.chargingRateUnit;
    const minA = charger.profile.minCurrentA;
    const def = txDefaultProfile({
      connectorId: 0,
      limit: limitInUnit(minA, unit, phases, this.cs.voltage),
      unit,
      phases,
      stackLevel: Math.max(0, charger.profile.stackLevel - 1),
    });
    try {
      await this.cs.expectAccepted(identity, 'SetChargingProfile', { connectorId: 0, csChargingProfiles: def });
      this.cs.ctx.log.info({ charger: identity, limitA: minA }, 'TxDefaultProfile set: new sessions start at the minimum current');
    } catch (err) {
      const e = toOutpostError(err);
      this.cs.ctx.log.warn(
        { charger: identity, code: e.code, reason: e.message },
        'charger refused the TxDefaultProfile: new sessions start at its own default until the plan limits them',
      );
    }
  }

  /**
   * ChargePointMaxProfile targets (A per phase, whole charger): what the plan gives the charger's
   * sessions, plus a share of what is left of the fallback limit. A charger cut off from the
   * gateway keeps its cap, so the sum over all chargers never exceeds max(fallbackA, the
   * current plan's total) even if every one of them starts sessions on its own. The rest of the
   * fallback is shared equally, but a share below the 6 A minimum cannot charge anything:
   * then 6 A go to as many chargers as fit (in config order) and 0 A to the others.
   */
  chargerCaps(plan: Plan): Map<string, number> {
    const deci = (a: number): number => Math.floor(a * 10 + 1e-9);
    const planned = new Map<string, number>();
    for (const charger of this.cs.chargers.values()) {
      // An offline charger holds whatever cap it confirmed last: reserve that.
      planned.set(charger.identity, charger.online ? 0 : deci(this.appliedCaps.get(charger.identity) ?? 0));
    }
    for (const a of plan.allocations) {
      const identity = a.key.slice(0, a.key.lastIndexOf('/'));
      if (this.cs.chargers.get(identity)?.online) planned.set(identity, (planned.get(identity) ?? 0) + deci(a.limitA));
    }
    let remaining = Math.max(0, deci(this.cs.fallbackA ?? 0) - [...planned.values()].reduce((x, y) => x + y, 0));
    const count = Math.max(1, planned.size);
    const share = Math.floor(remaining / count);
    const caps = new Map<string, number>();
    for (const charger of this.cs.chargers.values()) {
      const base = planned.get(charger.identity)!;
      const minA = deci(charger.profile.minCurrentA);
      let extra = share;
      if (share < minA) {
        extra = remaining >= minA ? minA : 0;
        remaining -= extra;
      }
      const max = deci(this.cs.maxCurrentOf(charger));
      caps.set(charger.identity, Math.max(base, Math.min(max, base + extra)) / 10);
    }
    return caps;
  }

  /** Lowers then raises ChargePointMaxProfiles; refusals are logged and retried next round. */
  async applyChargerCaps(plan: Plan): Promise<void> {
    const targets = [...this.chargerCaps(plan)].filter(([identity, capA]) => this.cs.chargers.get(identity)?.online && this.appliedCaps.get(identity) !== capA);
    const lower = targets.filter(([identity, capA]) => capA < (this.appliedCaps.get(identity) ?? Infinity));
    const higher = targets.filter((t) => !lower.includes(t));
    for (const group of [lower, higher]) {
      await Promise.all(
        group.map(async ([identity, capA]) => {
          const charger = this.cs.chargers.get(identity)!;
          const phases = this.cs.phasesOf(charger).length;
          const unit = charger.profile.chargingRateUnit;
          try {
            await this.cs.expectAccepted(identity, 'SetChargingProfile', {
              connectorId: 0,
              csChargingProfiles: chargePointMaxProfile({ limit: limitInUnit(capA, unit, phases, this.cs.voltage), unit, phases }),
            });
            this.appliedCaps.set(identity, capA);
            this.cs.ctx.log.debug({ charger: identity, limitA: capA }, 'ChargePointMaxProfile set');
          } catch (err) {
            const e = toOutpostError(err);
            this.cs.warnOnce(
              `cpmax:${identity}:${e.code}`,
              { charger: identity, limitA: capA, code: e.code, reason: e.message },
              'charger refused the ChargePointMaxProfile; retried at the next plan',
            );
          }
        }),
      );
    }
  }

  /** Last ChargePointMaxProfile limit a charger confirmed (A), for status and tests. */
  appliedCap(identity: string): number | undefined {
    return this.appliedCaps.get(identity);
  }

  /**
   * A charging profile was set or cleared from outside load management (REST): what the load
   * manager thinks is in force on that charger is no longer true, so it forgets it and re-plans,
   * which sends its own profiles again. Connector 0 or none means the whole charger.
   */
  profilesChangedExternally(identity: string, connectorId: number | undefined, clearedAll: boolean): void {
    if (!this.cs.loadManager) return;
    const charger = this.cs.chargers.get(identity);
    if (!charger) return;
    for (const c of charger.connectors.keys())
      if (connectorId === undefined || connectorId === 0 || connectorId === c) this.cs.loadManager.forget(`${identity}/${c}`);
    if (connectorId === undefined || connectorId === 0) this.appliedCaps.delete(identity);
    if (clearedAll) void this.sendSafetyProfiles(identity);
    this.cs.loadManager.replan(`charging profile changed on ${identity} outside load management`);
  }
}
