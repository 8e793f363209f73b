import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { modbusErrors } from '../../adapters/modbus/errors.js';
import { bmsErrors } from '../../adapters/bms-files/errors.js';
import { chargerErrors } from '../../adapters/ocpp/errors.js';
import { iridiumErrors } from '../../adapters/iridium/errors.js';
import { satelliteErrors, syncErrors } from '../../runtime/sync/errors.js';

// Adapters own their error codes (adapters/<name>/errors.ts, core/errors.ts explains the
// mechanism). Each adapter's index must register every code its modules throw: checked in a
// fresh process that imports that index and nothing else.

const root = fileURLToPath(new URL('../../', import.meta.url));
const run = promisify(execFile);

/** In a fresh process: import `modules` only, then build an OutpostError of each code. */
async function construct(modules: string[], codes: string[]): Promise<Record<string, { status: number; retryable: boolean; message: string }>> {
  const script = `
    ${modules.map((m) => `await import(${JSON.stringify(new URL(m, `file://${root}`).href)});`).join('\n')}
    const { OutpostError } = await import(${JSON.stringify(new URL('core/errors.ts', `file://${root}`).href)});
    const out = {};
    for (const code of ${JSON.stringify(codes)}) { const e = new OutpostError(code); out[code] = { status: e.status, retryable: e.retryable, message: e.message }; }
    process.stdout.write(JSON.stringify(out));
  `;
  const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, timeout: 60_000 });
  return JSON.parse(stdout);
}

const adapters: Array<[string, string, Record<string, { status: number; retryable: boolean; message: string }>]> = [
  ['modbus', 'adapters/modbus/index.ts', modbusErrors],
  ['bms-files', 'adapters/bms-files/index.ts', bmsErrors],
  ['ocpp', 'adapters/ocpp/index.ts', chargerErrors],
  ['iridium', 'adapters/iridium/index.ts', { ...iridiumErrors, ...satelliteErrors }],
];

for (const [name, index, catalogue] of adapters) {
  t.test(`${name}: importing its index registers every code it owns`, async (t) => {
    const codes = Object.keys(catalogue);
    t.ok(codes.length > 0);
    const got = await construct([index], codes);
    for (const code of codes) {
      const def = catalogue[code]!;
      t.same(got[code], { status: def.status, retryable: def.retryable, message: def.message }, code);
    }
  });
}

t.test('the core catalogue no longer defines adapter or sync codes', async (t) => {
  const codes = [...adapters.flatMap(([, , c]) => Object.keys(c)), ...Object.keys(syncErrors)];
  const got = await construct([], codes);
  for (const code of codes) t.match(got[code], { status: 500, retryable: false, message: /undefined error code/ }, `${code} is not core's`);
});

t.test('the sync service registers its codes', async (t) => {
  const codes = [...Object.keys(syncErrors), ...Object.keys(satelliteErrors)];
  const got = await construct(['runtime/sync/service.ts'], codes);
  for (const code of codes) {
    const def =
      (syncErrors as Record<string, { status: number; retryable: boolean; message: string }>)[code] ??
      (satelliteErrors as Record<string, { status: number; retryable: boolean; message: string }>)[code]!;
    t.same(got[code], { status: def.status, retryable: def.retryable, message: def.message }, code);
  }
});

t.test('code strings and meanings are unchanged', async (t) => {
  t.same(modbusErrors.MODBUS_TIMEOUT, { status: 504, retryable: true, message: 'Modbus device did not answer in time' });
  t.same(modbusErrors.MODBUS_TEMPLATE_INVALID, { status: 400, retryable: false, message: 'Modbus device template is invalid' });
  t.same(bmsErrors.BMS_FILE_INCOMPLETE.retryable, false);
  t.same(chargerErrors.CHARGER_OFFLINE, { status: 503, retryable: true, message: 'charger is not connected' });
  t.same(iridiumErrors.IRIDIUM_ACCOUNT, { status: 503, retryable: false, message: 'Iridium access denied (account or modem locked)' });
  t.same(satelliteErrors.IRIDIUM_BUDGET, { status: 429, retryable: true, message: 'Iridium credit budget exhausted' });
  t.same(syncErrors.SYNC_LINK_DOWN, { status: 503, retryable: true, message: 'upstream link is not connected' });
});
