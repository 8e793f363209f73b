/**
 * How the simulated charge point answers the central system's calls (SetChargingProfile,
 * ClearChargingProfile, Remote start/stop, configuration, TriggerMessage, Reset, Unlock,
 * ChangeAvailability), like a real OCPP 1.6 charger would. Split from simulator.ts, which keeps
 * the charge point's own behaviour (connection, sessions, meter values, profile stack).
 */
import type { RPCClient } from 'ocpp-rpc';
import type { ChargePointSimulator } from './simulator.js';
import type { InstalledProfile } from './sim-types.js';

/** Configuration keys marked R (read-only) in OCPP 1.6 §9.1 that the simulator has. */
const READ_ONLY_KEYS = new Set(['NumberOfConnectors']);

/** Registers every handler on a new connection; each call is recorded in `sim.received`. */
export function handleCentralSystemCalls(sim: ChargePointSimulator, client: RPCClient): void {
  const record = (action: string, params: unknown): void => {
    sim.received.push({ action, params });
    if (sim.received.length > 1000) sim.received.shift();
  };
  client.handle('SetChargingProfile', async ({ params }) => {
    record('SetChargingProfile', params);
    const p = params as { connectorId: number; csChargingProfiles: InstalledProfile['profile'] };
    sim.profiles.push(p);
    const purpose = p.csChargingProfiles.chargingProfilePurpose;
    // §5.16: a ChargePointMaxProfile only on connector 0; a TxProfile only for a running transaction.
    if (purpose === 'ChargePointMaxProfile' && p.connectorId !== 0) return { status: 'Rejected' };
    if (
      purpose === 'TxProfile' &&
      (p.connectorId === 0 ||
        p.csChargingProfiles.transactionId === undefined ||
        p.csChargingProfiles.transactionId !== sim.connector(p.connectorId).transactionId)
    )
      return { status: 'Rejected' };
    sim.installProfile(p.connectorId, p.csChargingProfiles);
    return { status: 'Accepted' };
  });
  client.handle('ClearChargingProfile', async ({ params }) => {
    record('ClearChargingProfile', params);
    const q = params as { id?: number; connectorId?: number; chargingProfilePurpose?: string; stackLevel?: number };
    // §5.5: every given criterion must match; no criteria clears all profiles.
    const keep = sim.installed.filter(
      (i) =>
        !(
          (q.id === undefined || i.profile.chargingProfileId === q.id) &&
          (q.connectorId === undefined || i.connectorId === q.connectorId) &&
          (q.chargingProfilePurpose === undefined || i.profile.chargingProfilePurpose === q.chargingProfilePurpose) &&
          (q.stackLevel === undefined || i.profile.stackLevel === q.stackLevel)
        ),
    );
    const removed = sim.installed.length - keep.length;
    sim.installed = keep;
    sim.recomputeLimits();
    return { status: removed > 0 ? 'Accepted' : 'Unknown' };
  });
  client.handle('RemoteStartTransaction', async ({ params }) => {
    record('RemoteStartTransaction', params);
    const p = params as { connectorId?: number; idTag: string };
    const c = sim.connectors.find((k) => (p.connectorId === undefined || k.id === p.connectorId) && k.transactionId === undefined);
    if (!c) return { status: 'Rejected' };
    setImmediate(() => void sim.startSession(c.id, p.idTag).catch(() => undefined));
    return { status: 'Accepted' };
  });
  client.handle('RemoteStopTransaction', async ({ params }) => {
    record('RemoteStopTransaction', params);
    const c = sim.connectors.find((k) => k.transactionId === (params as { transactionId: number }).transactionId);
    if (!c) return { status: 'Rejected' };
    setImmediate(() => void sim.stopSession(c.id, 'Remote').catch(() => undefined));
    return { status: 'Accepted' };
  });
  client.handle('ChangeConfiguration', async ({ params }) => {
    record('ChangeConfiguration', params);
    const p = params as { key: string; value: string };
    // §5.3: a key the charge point does not let be changed is Rejected (read-only keys, §9.1).
    if (READ_ONLY_KEYS.has(p.key)) return { status: 'Rejected' };
    sim.configuration.set(p.key, p.value);
    // A central system asking for meter values at another interval (OCPP 1.6 §9.1.18) gets them.
    if (p.key === 'MeterValueSampleInterval' && sim.opts.meterIntervalMs > 0 && Number(p.value) > 0) {
      if (sim.timer) sim.startMeterTimer(Number(p.value) * 1000);
      else sim.opts.meterIntervalMs = Number(p.value) * 1000; // the timer starts after the boot
    }
    return { status: 'Accepted' };
  });
  client.handle('GetConfiguration', async ({ params }) => {
    record('GetConfiguration', params);
    const keys = (params as { key?: string[] }).key;
    const known = [...sim.configuration]
      .filter(([k]) => !keys?.length || keys.includes(k))
      .map(([key, value]) => ({ key, value, readonly: READ_ONLY_KEYS.has(key) }));
    const unknownKey = (keys ?? []).filter((k) => !sim.configuration.has(k));
    return { configurationKey: known, ...(unknownKey.length ? { unknownKey } : {}) };
  });
  client.handle('TriggerMessage', async ({ params }) => {
    record('TriggerMessage', params);
    const p = params as { requestedMessage: string; connectorId?: number };
    if (p.requestedMessage === 'StatusNotification') {
      setImmediate(() => {
        void (async () => {
          for (const c of sim.connectors) if (p.connectorId === undefined || p.connectorId === c.id) await sim.sendStatus(c.id, c.status);
        })().catch(() => undefined);
      });
      return { status: 'Accepted' };
    }
    if (p.requestedMessage === 'Heartbeat') {
      setImmediate(() => void sim.send('Heartbeat', {}).catch(() => undefined));
      return { status: 'Accepted' };
    }
    return { status: 'NotImplemented' };
  });
  client.handle('Reset', async ({ params }) => {
    record('Reset', params);
    return { status: 'Accepted' };
  });
  client.handle('UnlockConnector', async ({ params }) => {
    record('UnlockConnector', params);
    const c = sim.connectors.find((k) => k.id === (params as { connectorId: number }).connectorId);
    return { status: c ? 'Unlocked' : 'NotSupported' };
  });
  client.handle('ChangeAvailability', async ({ params }) => {
    record('ChangeAvailability', params);
    const p = params as { connectorId: number; type: string };
    const targets = p.connectorId === 0 ? sim.connectors : sim.connectors.filter((k) => k.id === p.connectorId);
    if (targets.length === 0) return { status: 'Rejected' };
    const busy = targets.some((k) => k.transactionId !== undefined);
    for (const k of targets) k.available = p.type === 'Operative';
    return { status: busy ? 'Scheduled' : 'Accepted' };
  });
}
