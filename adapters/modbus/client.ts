import { createRequire } from 'node:module';
import type { ModbusRTU } from 'modbus-serial/ModbusRTU.js';

/**
 * modbus-serial is CommonJS whose typings declare an ES default export; under NodeNext
 * that default is not constructable, so the class is loaded through require here once.
 */
export type ModbusClient = ModbusRTU;
const require = createRequire(import.meta.url);
export const ModbusClient = require('modbus-serial') as new (port?: unknown) => ModbusRTU;
