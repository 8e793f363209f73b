import type { ActionHandler } from './types.js';

/**
 * DataTransfer (OCPP 1.6 §4.3): vendor extensions are logged (size-bounded) and answered
 * UnknownVendorId, the spec's answer when the central system has no knowledge of the vendor.
 */
export const dataTransfer: ActionHandler<{ vendorId: string; messageId?: string; data?: string }> = (central, charger, params) => {
  central.counters.dataTransfers++;
  central.ctx.log.info(
    {
      charger: charger.identity,
      vendorId: params.vendorId,
      messageId: params.messageId,
      data: params.data?.slice(0, 256),
      dataLength: params.data?.length ?? 0,
    },
    'DataTransfer from charger',
  );
  return { status: 'UnknownVendorId' };
};

/** Firmware and diagnostics status notifications (§4.4, §4.5): logged, empty answer. */
export const statusNotificationLogged: ActionHandler<{ status: string }> = (central, charger, params) => {
  central.ctx.log.info({ charger: charger.identity, status: params.status }, 'firmware/diagnostics status');
  return {};
};
