/**
 * The processes of the central ingest bench — Mosquitto and the `outpost central` receiver,
 * each pinned to a core of its own with taskset where there is one — and what /proc says of
 * them afterwards: CPU seconds (to see which process a figure was bound by) and peak RSS.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findMosquitto, hasTaskset } from '../mqtt-load/brokers.js';
import { freePort } from '../../test/sync/helpers/mosquitto.js';

export { hasTaskset };

const TICKS_PER_SECOND = Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim()) || 100;

export interface Child {
  pid: number;
  /** Undefined while it runs. */
  exit(): string | undefined;
  output(): string;
  stop(): Promise<void>;
}

/** Children alive now, killed by `killChildren` when the bench is interrupted. */
const alive = new Set<ChildProcess>();

export function killChildren(): void {
  for (const child of alive) child.kill('SIGKILL');
}

function pinned(core: number | undefined, cmd: string, args: string[], env?: NodeJS.ProcessEnv): ChildProcess {
  // taskset execs the command: the child's pid is the program's, and all its threads stay on `core`.
  const [c, a] = core !== undefined && hasTaskset ? ['taskset', ['-c', String(core), cmd, ...args]] : [cmd, args];
  const child = spawn(c, a as string[], { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  alive.add(child);
  child.once('exit', () => alive.delete(child));
  return child;
}

function wrap(child: ChildProcess): Child & { waitFor(re: RegExp, ms: number): Promise<RegExpExecArray> } {
  let out = '';
  const keep = (d: Buffer) => (out = (out + d.toString()).slice(-20_000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exit = () => (child.exitCode !== null ? `exit code ${child.exitCode}` : child.signalCode !== null ? `signal ${child.signalCode}` : undefined);
  return {
    pid: child.pid!,
    exit,
    output: () => out,
    stop: () =>
      new Promise<void>((resolve) => {
        if (exit() !== undefined) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 20_000).unref();
      }),
    waitFor: (re, ms) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`not ready within ${ms / 1000} s: ${out.slice(-2000)}`)), ms);
        const check = () => {
          const m = re.exec(out);
          if (!m) return;
          clearTimeout(timer);
          child.stdout!.off('data', check);
          resolve(m);
        };
        child.stdout!.on('data', check);
        child.once('exit', () => {
          clearTimeout(timer);
          reject(new Error(`exited (${exit()}) before it was ready: ${out.slice(-2000)}`));
        });
        check();
      }),
  };
}

/**
 * Mosquitto as a fleet's broker for one run: persistence off (nothing to measure but routing),
 * no limit on messages in flight or queued per client — the whole backlog waits in the broker
 * for the receiver; a limit would drop QoS 1 messages, not slow anyone down.
 */
export async function startBroker(dir: string, core: number | undefined): Promise<Child & { port: number }> {
  const binary = findMosquitto();
  if (!binary) throw new Error('mosquitto is not installed (apt-get install mosquitto)');
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  const lines = [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    'persistence false',
    'max_inflight_messages 0',
    'max_queued_messages 0',
    // $SYS every second: the bench waits for the receiver's subscriptions to show there.
    'sys_interval 1',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
  ];
  if (process.getuid?.() === 0) lines.push('user root');
  await writeFile(conf, `${lines.join('\n')}\n`);
  const child = wrap(pinned(core, binary, ['-c', conf]));
  const deadline = Date.now() + 10_000;
  while (!(await listening(port))) {
    if (child.exit() !== undefined) throw new Error(`mosquitto exited (${child.exit()}): ${child.output()}`);
    if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { ...child, port };
}

async function listening(port: number): Promise<boolean> {
  const { connect } = await import('node:net');
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * `outpost central -c <yaml>` exactly as an operator runs it: the build in dist/ when this
 * bench runs from dist/, else the sources through tsx. OUTPOST_* variables of the bench are
 * not passed on (the CLI refuses variables that name no config key).
 */
export async function startReceiver(yaml: string, core: number | undefined): Promise<Child & { url: string }> {
  // The CLI beside this module's tree: runtime/cli.ts from the sources, dist/runtime/cli.js built.
  const fromSource = import.meta.url.endsWith('.ts');
  const cli = fileURLToPath(new URL(fromSource ? '../../runtime/cli.ts' : '../../runtime/cli.js', import.meta.url));
  if (!existsSync(cli)) throw new Error(`${cli} is missing (npm run build)`);
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('OUTPOST_')) env[k] = v;
  // OUTPOST_BENCH_PROFILE=<dir>: the receiver writes a V8 CPU profile there when it stops.
  const profile = process.env.OUTPOST_BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.OUTPOST_BENCH_PROFILE}`] : [];
  // OUTPOST_BENCH_GC_LOG=<file>: the receiver runs with --trace-gc, its lines (stdout) appended there.
  const gcLog = process.env.OUTPOST_BENCH_GC_LOG;
  // OUTPOST_BENCH_RECEIVER_FLAGS='--flag …': node/V8 flags for the receiver alone (some, such as GC threading, NODE_OPTIONS refuses).
  const flags = (process.env.OUTPOST_BENCH_RECEIVER_FLAGS ?? '').split(/\s+/).filter(Boolean);
  const args = [...flags, ...profile, ...(gcLog ? ['--trace-gc'] : []), ...(fromSource ? ['--import', 'tsx'] : []), cli, 'central', '-c', yaml];
  const receiver = pinned(core, process.execPath, args, env);
  if (gcLog) receiver.stdout!.on('data', (d: Buffer) => appendFileSync(gcLog, d));
  const child = wrap(receiver);
  const m = await child.waitFor(/ready: (http:\/\/\S+)/, 120_000);
  return { ...child, url: m[1]! };
}

/** utime + stime of a process (all its threads), seconds; with `children`, of its waited-for children too. */
export function cpuSeconds(pid: number, children = false): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command (which may hold spaces) start at field 3.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]) + (children ? Number(f[13]) + Number(f[14]) : 0);
    return ticks / TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}

/** Peak resident set (VmHWM) of a running process, bytes. */
export function peakRss(pid: number): number {
  try {
    const m = /VmHWM:\s*(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/**
 * CPU seconds of a PostgreSQL cluster: the postmaster, every backend it reaped (its children's
 * times) and every process of it alive now (backends, WAL writer, checkpointer, …).
 */
export function clusterCpuSeconds(postmaster: number): number {
  let total = cpuSeconds(postmaster, true);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === postmaster) total += cpuSeconds(Number(entry));
    } catch {
      // The process ended between the listing and the read: its time is in the postmaster's children's now.
    }
  }
  return total;
}

/** The postmaster's pid, from `postmaster.pid` in the data directory (`SHOW data_directory`). */
export function postmasterPid(dataDirectory: string): number {
  return Number(readFileSync(join(dataDirectory, 'postmaster.pid'), 'utf8').split('\n')[0]);
}

/** This process and all its threads (workers started later inherit it) to `core`. */
export function pinSelf(core: number): void {
  if (hasTaskset) spawnSync('taskset', ['-a', '-p', '-c', String(core), String(process.pid)]);
}
