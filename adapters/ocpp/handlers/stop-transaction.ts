import type { Value } from '../../../core/datapoint.js';
import { authorizeIdTag } from '../authorization.js';
import { parseOcppTime } from '../codec.js';
import { connectorIds } from '../mapping.js';
import { ingestMeterValues, type MeterValueIn } from './meter-values.js';
import type { ActionHandler } from './types.js';

interface StopTransactionReq {
  transactionId: number;
  idTag?: string;
  meterStop: number;
  timestamp: string;
  reason?: string;
  transactionData?: MeterValueIn[];
}

/**
 * StopTransaction (OCPP 1.6 §4.10). Must be answered even for a transaction we do not know
 * (the charger would otherwise retry it forever, §4.10 / §3.16 message retries); that case is
 * counted and logged. The closed session is published on `<prefix>.sessions.completed`, so it
 * reaches upstream through the outbox once a link is up.
 */
export const stopTransaction: ActionHandler<StopTransactionReq> = async (central, charger, params) => {
  const now = central.ctx.clock.now();
  const open = central.sessions.getOpen(params.transactionId);
  // Transaction ids are sequential: another charger's id is easy to guess. A charger may
  // only end its own sessions; anything else is treated as an unknown transaction.
  if (open && open.charger !== charger.identity) {
    central.counters.unknownTransactions++;
    central.ctx.log.warn(
      { charger: charger.identity, transactionId: params.transactionId, owner: open.charger },
      "StopTransaction for another charger's transaction refused",
    );
    return params.idTag ? { idTagInfo: authorizeIdTag(central.options.idTags, params.idTag, now) } : {};
  }
  if (open && params.transactionData?.length) {
    await ingestMeterValues(central, charger, open.connectorId, open.id, params.transactionData);
  }
  const stop = central.sampleTime(parseOcppTime(params.timestamp));
  const session = await central.sessions.stop(params.transactionId, {
    stop,
    meterStopWh: params.meterStop,
    reason: params.reason ?? 'Local',
    idTag: params.idTag,
  });
  const answer = params.idTag ? { idTagInfo: authorizeIdTag(central.options.idTags, params.idTag, now) } : {};
  if (!session) {
    central.counters.unknownTransactions++;
    central.ctx.log.warn({ charger: charger.identity, transactionId: params.transactionId }, 'StopTransaction for a transaction this gateway never started');
    return answer;
  }
  if (!open) return answer; // already closed: a repeated StopTransaction
  central.ctx.log.info(
    { charger: charger.identity, connector: session.connectorId, transactionId: session.id, energyKwh: session.energyKwh, reason: session.stopReason },
    'charging session stopped',
  );
  const key = `${charger.identity}/${session.connectorId}`;
  central.loadManager?.forget(key);
  await central.ensureDatapoints(charger, session.connectorId);
  await central.ctx.datapoints.register({ id: central.ids.completed, type: 'json', description: 'Charging sessions as they complete (synced upstream)' });
  await central.publish([
    { id: connectorIds(central.options.prefix, charger.identity, session.connectorId).sessionEnergy, v: session.energyKwh, t: stop },
    { id: connectorIds(central.options.prefix, charger.identity, session.connectorId).allocated, v: 0, t: stop },
    { id: central.ids.completed, v: central.sessions.view(session) as unknown as Value, t: stop },
  ]);
  central.statusChanged(`session ${session.id} stopped`);
  return answer;
};
