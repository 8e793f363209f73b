import type { CentralSystem } from '../central.js';
import type { ChargerState } from '../charger-state.js';

/** One OCPP action handler: params already passed the OCPP 1.6 JSON schema (ocpp-rpc strict mode). */
export type ActionHandler<P = Record<string, unknown>, R = Record<string, unknown>> = (
  central: CentralSystem,
  charger: ChargerState,
  params: P,
) => Promise<R> | R;
