/**
 * The connector bound a charger is held to (handlers/connector-bound.ts), and learning it from the
 * charger itself: after an accepted BootNotification and on every (re)connect the central system
 * asks GetConfiguration `NumberOfConnectors` (OCPP 1.6 §5.8; the key is read-only, §9.1.21).
 * Order: the installation's `connectors` (config) wins, then the charger's own answer, then the
 * profile's. A bad answer (not a whole number, below 1, the key unknown, a CALLERROR, none within
 * `callTimeoutMs`) changes nothing and is warned about once per charger; an absurdly large one is
 * capped at {@link MAX_CONNECTORS}. Connectors created before a lower bound was learned keep their
 * datapoints and stored values; messages naming them are refused from then on.
 */
import type { CentralSystem } from './central.js';
import type { ChargerState } from './charger-state.js';

/** Where a charger's connector bound comes from. */
export type ConnectorBoundSource = 'config' | 'charger' | 'profile';

/**
 * The most connectors a charger's answer is believed up to (the config's `connectors` has the same
 * maximum). AC posts have 1–4 outlets; a larger answer is a firmware bug or a charger trying to
 * make the gateway create datapoints without end.
 */
export const MAX_CONNECTORS = 32;

const KEY = 'NumberOfConnectors';

/** NumberOfConnectors of a charger, and which source gave it. */
export function connectorBound(charger: ChargerState): { count: number; source: ConnectorBoundSource } {
  if (charger.config?.connectors !== undefined) return { count: charger.config.connectors, source: 'config' };
  if (charger.reportedConnectors !== undefined) return { count: charger.reportedConnectors, source: 'charger' };
  return { count: charger.profile.connectors, source: 'profile' };
}

/** What a GetConfiguration.conf says about NumberOfConnectors: a usable count, or why not. */
export type NumberOfConnectorsAnswer = { count: number; reported: string; capped: boolean } | { problem: string; reported?: string };

/**
 * Reads NumberOfConnectors out of a GetConfiguration.conf (OCPP 1.6 §6.27). Keys are CiString50
 * (case-insensitive, §2.4); the value is a string that must hold a whole number ≥ 1.
 */
export function readNumberOfConnectors(conf: unknown): NumberOfConnectorsAnswer {
  const answer = (typeof conf === 'object' && conf !== null ? conf : {}) as { configurationKey?: unknown; unknownKey?: unknown };
  const isKey = (k: unknown): boolean => typeof k === 'string' && k.toLowerCase() === KEY.toLowerCase();
  if (Array.isArray(answer.unknownKey) && answer.unknownKey.some(isKey)) return { problem: 'the charger does not know the key (unknownKey)' };
  const entries = Array.isArray(answer.configurationKey) ? (answer.configurationKey as Array<{ key?: unknown; value?: unknown }>) : [];
  const entry = entries.find((e) => isKey(e?.key));
  if (!entry) return { problem: 'the key is missing from the answer' };
  if (typeof entry.value !== 'string') return { problem: 'the key has no value' };
  const reported = entry.value.slice(0, 64);
  if (!/^\s*\d+\s*$/.test(entry.value)) return { problem: 'the value is not a whole number', reported };
  const count = Number(entry.value);
  if (count < 1) return { problem: 'the value is below 1', reported };
  return count > MAX_CONNECTORS ? { count: MAX_CONNECTORS, reported, capped: true } : { count, reported, capped: false };
}

/**
 * Asks the charger for its NumberOfConnectors and keeps a good answer as its bound. A good answer
 * on the current connection counts whichever question it answers (a boot asks again while the
 * question sent on connect may still be out); a bad one is warned about only for the latest. When the bound grows, the charger is asked for its
 * connectors' status again (TriggerMessage, §5.17): a connector it reported before the answer
 * arrived was refused.
 */
export async function learnConnectorCount(central: CentralSystem, identity: string): Promise<void> {
  const charger = central.chargers.get(identity);
  const connection = charger?.connection;
  if (!charger || !connection) return;
  const question = Symbol(KEY);
  charger.connectorQuery = question;
  const current = (): boolean => charger.connectorQuery === question && charger.connection === connection;
  const before = connectorBound(charger);
  let conf: unknown;
  let failure: Error | undefined;
  try {
    conf = await central.call(identity, 'GetConfiguration', { key: [KEY] });
  } catch (err) {
    failure = err as Error;
  }
  if (charger.connection !== connection) return; // the connection is gone: the next one asks again
  const latest = current();
  if (latest) charger.connectorQuery = undefined;
  const read = failure ? { problem: 'no answer', reason: failure.message.slice(0, 300) } : readNumberOfConnectors(conf);
  if ('problem' in read) {
    // A failed older question says nothing while a newer one is out.
    if (latest) keepBound(central, charger, before, read);
    return;
  }
  if (read.capped)
    central.warnOnce(
      `connector-count-capped:${identity}`,
      { charger: identity, reported: read.reported, numberOfConnectors: read.count },
      `charger answered an implausible NumberOfConnectors; capped at ${MAX_CONNECTORS}`,
    );
  const changed = charger.reportedConnectors !== read.count;
  charger.reportedConnectors = read.count;
  const after = connectorBound(charger);
  if (after.source === 'config' && charger.config!.connectors !== read.count)
    central.warnOnce(
      `connector-count-config:${identity}`,
      { charger: identity, configured: charger.config!.connectors, reported: read.count },
      'charger reports another NumberOfConnectors than its config `connectors`; the config is used',
    );
  else if (changed)
    central.ctx.log.info({ charger: identity, numberOfConnectors: after.count, profile: charger.profile.name }, 'connector bound learned from the charger');
  central.scheduleStatus();
  if (after.count > before.count)
    await central
      .call(identity, 'TriggerMessage', { requestedMessage: 'StatusNotification' })
      .catch((err: Error) => central.ctx.log.debug({ charger: identity, reason: err.message }, 'TriggerMessage StatusNotification not accepted'));
}

function keepBound(
  central: CentralSystem,
  charger: ChargerState,
  bound: { count: number; source: ConnectorBoundSource },
  why: { problem: string; reported?: string; reason?: string },
): void {
  central.warnOnce(
    `connector-count:${charger.identity}`,
    { charger: charger.identity, ...why, numberOfConnectors: bound.count, from: bound.source, profile: charger.profile.name },
    `charger did not tell its NumberOfConnectors; the ${bound.source}'s bound stays`,
  );
}
