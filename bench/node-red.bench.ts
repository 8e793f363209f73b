/**
 * Memory of Node-RED embedded in Outpost (issue 9: "when enabled, the whole process stays
 * within 1.5× a bare Node-RED process's RSS"). Starts, one after another:
 *   1. bare Node-RED (node_modules/node-red/red.js, temp user dir, empty flows, loopback, port 0);
 *   2. an Outpost gateway (simulated site, LevelDB) with Node-RED embedded running the demo flows;
 *   3. the same gateway with Node-RED disabled.
 * Each runs SETTLE_MS after it is ready, then RSS is sampled SAMPLES times (VmRSS from
 * /proc/<pid>/status); the median is reported. Prints all three and the ratio 2/1.
 *
 *   node --import tsx bench/node-red.bench.ts          (~40 s)
 *   NODE_RED_BENCH_SETTLE_MS=30000 node --import tsx bench/node-red.bench.ts   (longer settle)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));
const fromSource = import.meta.url.endsWith('.ts');
const require = createRequire(import.meta.url);
const SETTLE_MS = Number(process.env.NODE_RED_BENCH_SETTLE_MS ?? 8000);
const SAMPLES = 5;
const LIMIT = 1.5;

async function rssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]);
}

/** Starts a process, waits for `ready` on its stdout, lets it settle, samples RSS, stops it. */
async function measure(name: string, args: string[], ready: RegExp): Promise<number> {
  const child: ChildProcess = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} not ready within 60 s:\n${out.slice(-2000)}\n${err}`)), 60_000);
      child.stdout!.on('data', (d: Buffer) => {
        out = (out + d.toString()).slice(-8000);
        if (ready.test(out)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited with ${code} before ready:\n${out.slice(-2000)}\n${err}`));
      });
    });
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const samples: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      samples.push(await rssKiB(child.pid!));
      await new Promise((r) => setTimeout(r, 500));
    }
    samples.sort((a, b) => a - b);
    return samples[Math.floor(samples.length / 2)]!;
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
  }
}

const dirs: string[] = [];
const tmp = async (p: string) => {
  const d = await mkdtemp(join(tmpdir(), p));
  dirs.push(d);
  return d;
};

try {
  const userDir = await tmp('outpost-bench-nodered-');
  await writeFile(
    join(userDir, 'settings.js'),
    `module.exports = { uiHost: '127.0.0.1', flowFile: 'flows.json', credentialSecret: 'bench-credential-secret-0123456789',
      telemetry: { enabled: false }, diagnostics: { enabled: false }, editorTheme: { tours: false } };\n`,
  );
  const redJs = join(dirname(require.resolve('node-red/package.json')), 'red.js');
  const bare = await measure('bare Node-RED', [redJs, '-u', userDir, '-s', join(userDir, 'settings.js'), '-p', '0'], /Started flows/);

  const launcher = fromSource ? ['--import', 'tsx', join(here, 'node-red-launcher.ts')] : [join(here, 'node-red-launcher.js')];
  const embedded = await measure('Outpost + Node-RED', [...launcher, await tmp('outpost-bench-gw-')], /READY \d+/);
  const without = await measure('Outpost without Node-RED', [...launcher, await tmp('outpost-bench-gw-'), '--no-flows'], /READY \d+/);

  const mb = (k: number) => `${(k / 1024).toFixed(1)} MB`;
  const ratio = embedded / bare;
  console.log(`RSS after ${SETTLE_MS / 1000} s settle (median of ${SAMPLES} samples)${fromSource ? ', Outpost run from source through tsx' : ''}:`);
  console.log(`  bare Node-RED (empty flows)              ${mb(bare)}`);
  console.log(`  Outpost + Node-RED (demo site + flows)   ${mb(embedded)}`);
  console.log(`  Outpost, Node-RED disabled               ${mb(without)}`);
  console.log(`  ratio Outpost+Node-RED / bare Node-RED   ${ratio.toFixed(2)}× (limit ${LIMIT}×) ${ratio <= LIMIT ? 'OK' : 'OVER'}`);
  console.log(`  Node-RED share of the Outpost process     ${mb(embedded - without)}`);
  if (ratio > LIMIT) process.exitCode = 1;
} finally {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
}
