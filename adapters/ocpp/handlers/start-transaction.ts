import { authorizeIdTag } from '../authorization.js';
import { parseOcppTime } from '../codec.js';
import { connectorIds } from '../mapping.js';
import type { ActionHandler } from './types.js';

interface StartTransactionReq {
  connectorId: number;
  idTag: string;
  meterStart: number;
  reservationId?: number;
  timestamp: string;
}

/**
 * StartTransaction (OCPP 1.6 §4.8). The gateway assigns the transaction id from its durable
 * counter. A transaction id is returned even when the tag is refused (the charger then stops,
 * §4.8). A repeated request (the charger resending after a lost answer) gets the same id.
 */
export const startTransaction: ActionHandler<StartTransactionReq> = async (central, charger, params) => {
  const now = central.ctx.clock.now();
  const start = central.sampleTime(parseOcppTime(params.timestamp));
  let idTagInfo = authorizeIdTag(central.options.idTags, params.idTag, now);
  const existing = central.sessions.activeOn(charger.identity, params.connectorId);
  if (existing && existing.idTag === params.idTag && existing.start === start && existing.meterStartWh === params.meterStart) {
    return { transactionId: existing.id, idTagInfo };
  }
  if (existing) {
    // The StopTransaction of the previous session never arrived: close it where it must have ended.
    central.ctx.log.warn(
      { charger: charger.identity, connector: params.connectorId, transactionId: existing.id },
      'closing a session whose StopTransaction never arrived',
    );
    await central.sessions.stop(existing.id, { stop: start, meterStopWh: existing.lastMeterWh ?? params.meterStart, reason: 'Other' });
    central.loadManager?.forget(`${charger.identity}/${params.connectorId}`);
  }
  if (idTagInfo.status === 'Accepted') {
    const tag = params.idTag.toLowerCase();
    const elsewhere = central.sessions
      .openSessions()
      .find((s) => s.idTag.toLowerCase() === tag && !(s.charger === charger.identity && s.connectorId === params.connectorId));
    if (elsewhere) idTagInfo = { status: 'ConcurrentTx' };
  }
  const session = await central.sessions.start({
    charger: charger.identity,
    connectorId: params.connectorId,
    idTag: params.idTag,
    authorization: idTagInfo.status,
    start,
    meterStartWh: params.meterStart,
    lastMeterWh: params.meterStart,
    ...(params.reservationId !== undefined ? { reservationId: params.reservationId } : {}),
  });
  central.ctx.log.info(
    { charger: charger.identity, connector: params.connectorId, transactionId: session.id, authorization: idTagInfo.status },
    'charging session started',
  );
  await central.ensureDatapoints(charger, params.connectorId);
  await central.publish([{ id: connectorIds(central.options.prefix, charger.identity, params.connectorId).sessionEnergy, v: 0, t: start }]);
  // Re-plan only after this answer is on the wire: a TxProfile naming the transaction id
  // must not reach the charger before the StartTransaction.conf that tells it the id
  // (OCPP 1.6 §3.13.4: a TxProfile without a matching transaction is rejected).
  setImmediate(() => central.statusChanged(`session ${session.id} started`));
  return { transactionId: session.id, idTagInfo };
};
