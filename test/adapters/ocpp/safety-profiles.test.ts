import t from 'tap';
import { eventually } from '../../helpers/gateway.js';
import { startOcppGateway, postJson } from './helpers.js';
import type { ChargePointSimulator } from '../../../adapters/ocpp/simulator.js';

interface SentProfile {
  connectorId: number;
  csChargingProfiles: { chargingProfilePurpose: string; transactionId?: number; chargingSchedule: { chargingSchedulePeriod: Array<{ limit: number }> } };
}

const sent = (sim: ChargePointSimulator, purpose: string): SentProfile[] =>
  sim.received
    .filter((r) => r.action === 'SetChargingProfile' && (r.params as SentProfile).csChargingProfiles.chargingProfilePurpose === purpose)
    .map((r) => r.params as SentProfile);
const limitOf = (p: SentProfile | undefined): number | undefined => p?.csChargingProfiles.chargingSchedule.chargingSchedulePeriod[0]?.limit;

t.test('load management caps chargers at connect, starts sessions low, logs plans and re-applies after REST profile changes', async (t) => {
  // Site limit 16 A, fallback 14 A shared by 2 configured chargers: 7 A each while idle.
  const gw = await startOcppGateway(t, {
    chargers: [
      { id: 'A', securityProfile: 0 },
      { id: 'B', securityProfile: 0 },
    ],
    idTags: { acceptUnknown: true },
    // The simulated car follows at once: the loop's waits shortened so the test runs in seconds.
    loadManagement: { limitA: 16, fallbackA: 14, marginA: 0, control: { followMs: 200, settleTimeoutMs: 1000, increaseHoldMs: 0, rampStepA: 16 } },
  });
  const sim = gw.sim({ identity: 'A' });
  const limits: number[] = [];
  sim.onLimit = (_c, limitA) => limits.push(limitA);
  await sim.connect();

  // 1. Safety profiles on connect.
  await eventually(() => sent(sim, 'ChargePointMaxProfile').length > 0 && sent(sim, 'TxDefaultProfile').length > 0);
  const cpMax = sent(sim, 'ChargePointMaxProfile')[0]!;
  t.equal(cpMax.connectorId, 0, 'ChargePointMaxProfile on connector 0');
  t.equal(limitOf(cpMax), 7, 'idle share of the 14 A fallback over 2 chargers');
  const txDefault = sent(sim, 'TxDefaultProfile')[0]!;
  t.equal(txDefault.connectorId, 0);
  t.equal(limitOf(txDefault), 6, 'new sessions start at the IEC 61851-1 minimum');
  await eventually(() => sim.connector(1).limitA === 6);
  t.equal(sim.connector(1).limitA, 6, 'the limit a new session starts with is 6 A');

  // The session starts at the default; the plan then raises charger cap and TxProfile.
  const started = await sim.startSession(1, 'TAG', { carMaxA: 32 });
  await eventually(() => sim.connector(1).limitA === 16);
  const firstTx = sent(sim, 'TxProfile')[0]!;
  t.equal(firstTx.csChargingProfiles.transactionId, started.transactionId);
  t.equal(limitOf(firstTx), 6, 'the first TxProfile holds the session at the minimum');
  t.equal(limitOf(sent(sim, 'TxProfile').at(-1)), 16, 'raised once the car had time to follow');
  t.equal(limitOf(sent(sim, 'ChargePointMaxProfile').at(-1)), 16, 'the charger cap rose with the plan');
  t.ok(limits.indexOf(6) < limits.indexOf(16), `6 A before the plan raised it to 16 A (${limits.join(', ')})`);
  t.notOk(
    limits.some((l) => l > 16),
    'never above the plan',
  );

  // 2. The plan that changed is logged at info with the per-session limit and its reason.
  await eventually(() =>
    gw.logs.some(
      (l) =>
        l.level === 30 &&
        l.msg === 'charging plan changed' &&
        (l.allocations as Array<{ session: string; limitA: number; reason: string }>).some(
          (a) => a.session === 'A/1' && a.limitA === 16 && a.reason.length > 0,
        ),
    ),
  );
  const infoBefore = gw.logs.filter((l) => l.msg === 'charging plan changed').length;
  await sim.tick(10_000); // a meter value: a new round with the same allocations
  await eventually(() => gw.logs.some((l) => l.level === 20 && l.msg === 'charging plan unchanged'));
  t.equal(gw.logs.filter((l) => l.msg === 'charging plan changed').length, infoBefore, 'an unchanged round is not logged at info');

  // 3. A profile cleared by hand: the load manager sends its profiles again.
  const txBefore = sent(sim, 'TxProfile').length;
  const cpBefore = sent(sim, 'ChargePointMaxProfile').length;
  const clear = await postJson<{ result: { status: string } }>(`${gw.httpUrl}/api/charging/chargers/A/clear-charging-profile`, {});
  t.equal(clear.body.result.status, 'Accepted');
  await eventually(() => sent(sim, 'TxProfile').length > txBefore && sent(sim, 'ChargePointMaxProfile').length > cpBefore);
  await eventually(() => limitOf(sent(sim, 'TxProfile').at(-1)) === 16);
  t.pass('fresh TxProfile after the clear');
  await eventually(() => sim.connector(1).limitA === 16);
  t.pass('the charger is back under the plan');

  // Refusals are logged: the charger now rejects charger-wide and default profiles.
  (sim as unknown as { client: { handle(a: string, f: (call: { params: SentProfile }) => unknown): void } }).client.handle(
    'SetChargingProfile',
    ({ params }) => ({
      status: params.csChargingProfiles.chargingProfilePurpose === 'TxProfile' ? 'Accepted' : 'Rejected',
    }),
  );
  await postJson(`${gw.httpUrl}/api/charging/chargers/A/clear-charging-profile`, {});
  await eventually(() => gw.logs.some((l) => l.level === 40 && String(l.msg).startsWith('charger refused the ChargePointMaxProfile')));
  await eventually(() => gw.logs.some((l) => l.level === 40 && String(l.msg).startsWith('charger refused the TxDefaultProfile')));
  t.pass('refusals logged');

  // Reconnect (fresh handlers in the simulator): both safety profiles are sent again.
  await sim.disconnect();
  const cpCount = sent(sim, 'ChargePointMaxProfile').length;
  const defCount = sent(sim, 'TxDefaultProfile').length;
  await sim.connect({ boot: false });
  await eventually(() => sent(sim, 'ChargePointMaxProfile').length > cpCount && sent(sim, 'TxDefaultProfile').length > defCount);
  t.equal(limitOf(sent(sim, 'TxDefaultProfile').at(-1)), 6);
  await eventually(() => sim.connector(1).limitA === 16);
  t.pass('re-sent after reconnect, session back at its planned limit');

  // A second charger joins while A takes the whole fallback: it is capped at 0 A, then
  // shares once A's session ends.
  const simB = gw.sim({ identity: 'B' });
  await simB.connect();
  await eventually(() => sent(simB, 'ChargePointMaxProfile').length > 0);
  t.equal(limitOf(sent(simB, 'ChargePointMaxProfile')[0]), 0, 'no fallback left for B while A is planned 16 A');
  await sim.stopSession(1);
  await eventually(() => limitOf(sent(simB, 'ChargePointMaxProfile').at(-1)) === 7 && limitOf(sent(sim, 'ChargePointMaxProfile').at(-1)) === 7);
  t.pass('idle chargers share the fallback again: 7 A each');
});
