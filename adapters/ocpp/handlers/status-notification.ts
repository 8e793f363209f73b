import { parseOcppTime } from '../codec.js';
import { connectorIds } from '../mapping.js';
import type { ActionHandler } from './types.js';

interface StatusNotificationReq {
  connectorId: number;
  errorCode: string;
  status: string;
  timestamp?: string;
  info?: string;
  vendorId?: string;
  vendorErrorCode?: string;
}

/** StatusNotification (OCPP 1.6 §4.9): connector status and error code become datapoints; re-plans. */
export const statusNotification: ActionHandler<StatusNotificationReq> = async (central, charger, params) => {
  const connector = central.connector(charger, params.connectorId);
  const changed = connector.status !== params.status || connector.errorCode !== params.errorCode;
  connector.status = params.status;
  connector.errorCode = params.errorCode;
  const t = central.sampleTime(parseOcppTime(params.timestamp) ?? central.ctx.clock.now());
  if (params.errorCode !== 'NoError') {
    central.ctx.log.warn(
      { charger: charger.identity, connector: params.connectorId, errorCode: params.errorCode, info: params.info, vendorErrorCode: params.vendorErrorCode },
      'charger reports an error',
    );
  }
  await central.ensureDatapoints(charger, params.connectorId);
  const ids = connectorIds(central.options.prefix, charger.identity, params.connectorId);
  await central.publish([
    { id: ids.status, v: params.status, t },
    { id: ids.errorCode, v: params.errorCode, t },
  ]);
  if (changed) central.statusChanged(`status ${charger.identity}/${params.connectorId} ${params.status}`);
  return {};
};
