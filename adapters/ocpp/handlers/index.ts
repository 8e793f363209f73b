import type { ActionHandler } from './types.js';
import { authorize } from './authorize.js';
import { bootNotification } from './boot-notification.js';
import { dataTransfer, statusNotificationLogged } from './data-transfer.js';
import { heartbeat } from './heartbeat.js';
import { meterValues } from './meter-values.js';
import { startTransaction } from './start-transaction.js';
import { statusNotification } from './status-notification.js';
import { stopTransaction } from './stop-transaction.js';

/**
 * The charge-point-initiated actions we answer (OCPP 1.6 §4). Anything else gets a
 * NotImplemented CALLERROR from ocpp-rpc (OCPP-J 1.6 §4.2.3).
 */
export const actionHandlers: Record<string, ActionHandler<never>> = {
  Authorize: authorize,
  BootNotification: bootNotification,
  DataTransfer: dataTransfer,
  DiagnosticsStatusNotification: statusNotificationLogged,
  FirmwareStatusNotification: statusNotificationLogged,
  Heartbeat: heartbeat,
  MeterValues: meterValues,
  StartTransaction: startTransaction,
  StatusNotification: statusNotification,
  StopTransaction: stopTransaction,
};
