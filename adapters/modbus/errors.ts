import { defineErrors, type CodesOf } from '../../core/errors.js';

/**
 * The Modbus adapter's error codes (core/errors.ts explains catalogues). A module that throws
 * one of them imports this file, so the definition is registered before it is needed.
 */
export const modbusErrors = defineErrors({
  MODBUS_TIMEOUT: { status: 504, retryable: true, message: 'Modbus device did not answer in time' },
  MODBUS_EXCEPTION: { status: 502, retryable: false, message: 'Modbus device answered with an exception code' },
  MODBUS_FRAME: { status: 502, retryable: true, message: 'Modbus response was corrupt (CRC, length or address)' },
  MODBUS_PORT_UNAVAILABLE: { status: 503, retryable: true, message: 'Modbus port or connection is not available' },
  MODBUS_TEMPLATE_INVALID: { status: 400, retryable: false, message: 'Modbus device template is invalid' },
});

declare module '../../core/errors.js' {
  interface ErrorCatalogue extends CodesOf<typeof modbusErrors> {}
}
