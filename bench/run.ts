/**
 * `npm run bench`: runs every `*.bench.js` next to this file (broker, storage, memory and
 * start-up, ...), one after another, each in its own process so one benchmark's heap does
 * not colour the next. Each benchmark prints its own figures side by side with its peer and
 * the ratio. `npm run bench -- memory` runs the ones whose name contains "memory".
 * The soak (soak.js, an hour by default) runs only when named: `npm run bench -- soak`,
 * with OUTPOST_SOAK_MINUTES to shorten it.
 */
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.js') || (f === 'soak.js' && only.includes('soak')))
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort();
if (files.length === 0) {
  console.error('no benchmarks found' + (only.length ? ` matching ${only.join(', ')}` : ''));
  process.exit(1);
}
let failed = 0;
for (const file of files) {
  console.log(`\n=== ${file.replace(/(\.bench)?\.js$/, '')}`);
  const res = spawnSync(process.execPath, ['--expose-gc', join(here, file)], { stdio: 'inherit' });
  if (res.status !== 0) {
    failed++;
    console.error(`${file} failed (${res.status ?? res.signal})`);
  }
}
process.exit(failed ? 1 : 0);
