import { formatOcppTime } from '../codec.js';
import { learnConnectorCount } from '../connector-count.js';
import type { ActionHandler } from './types.js';

interface BootNotificationReq {
  chargePointVendor: string;
  chargePointModel: string;
  chargePointSerialNumber?: string;
  chargeBoxSerialNumber?: string;
  firmwareVersion?: string;
  iccid?: string;
  imsi?: string;
  meterType?: string;
  meterSerialNumber?: string;
}

/**
 * BootNotification (OCPP 1.6 §4.2): always Accepted, because the charger already passed
 * authentication at the websocket upgrade. Right after the answer (a central system may send
 * requests once it accepted the boot, §4.2) it is asked its NumberOfConnectors (connector-count.ts)
 * and sent the profile's configuration keys.
 */
export const bootNotification: ActionHandler<BootNotificationReq> = (central, charger, params) => {
  const now = central.ctx.clock.now();
  central.setBoot(charger, {
    chargePointVendor: params.chargePointVendor,
    chargePointModel: params.chargePointModel,
    firmwareVersion: params.firmwareVersion,
    chargePointSerialNumber: params.chargePointSerialNumber ?? params.chargeBoxSerialNumber,
    at: now,
  });
  central.ctx.log.info(
    {
      charger: charger.identity,
      vendor: params.chargePointVendor,
      model: params.chargePointModel,
      firmware: params.firmwareVersion,
      profile: charger.profile.name,
    },
    'charger booted',
  );
  setImmediate(() => {
    // A booted charger may have other hardware than before: its NumberOfConnectors is asked again.
    void learnConnectorCount(central, charger.identity);
    void configureAfterBoot(central, charger.identity);
  });
  central.statusChanged('charger booted');
  return { status: 'Accepted', currentTime: formatOcppTime(now), interval: central.options.heartbeatIntervalS };
};

async function configureAfterBoot(central: Parameters<ActionHandler>[0], identity: string): Promise<void> {
  const charger = central.chargers.get(identity);
  if (!charger?.online) return;
  const configuration = { ...charger.profile.configuration };
  // Load management learns that a car followed a new limit from its next MeterValues: ask
  // for them more often while it runs (OCPP 1.6 §9.1.18 MeterValueSampleInterval, seconds).
  const faster = central.options.loadManagement?.meterValuesIntervalS;
  if (faster !== undefined && faster > 0 && Number(configuration.MeterValueSampleInterval ?? Infinity) > faster)
    configuration.MeterValueSampleInterval = String(faster);
  for (const [key, value] of Object.entries(configuration)) {
    try {
      const result = await central.call(identity, 'ChangeConfiguration', { key, value });
      if (result.status !== 'Accepted' && result.status !== 'RebootRequired') {
        central.warnOnce(`config:${identity}:${key}`, { charger: identity, key, status: result.status }, 'charger did not accept a configuration key');
      }
    } catch (err) {
      central.warnOnce(`config:${identity}:${key}`, { charger: identity, key, reason: (err as Error).message }, 'configuration key not sent');
    }
  }
}
