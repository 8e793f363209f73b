import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, statfs } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import os from 'node:os';

/**
 * What the System page shows of the machine: disk, memory, load, clock synchronisation,
 * versions, and who would start the gateway again after a restart. Each probe answers with
 * what it found or says it could not tell; none throws (the page must show the rest).
 */

/**
 * Exit code of a restart asked for by an admin (POST /api/system/restart): EX_TEMPFAIL of
 * sysexits.h ("a temporary failure; the user is invited to retry"). Any non-zero code makes
 * systemd's `Restart=on-failure` (README, Operations) and Docker's `--restart on-failure` /
 * `unless-stopped` start the process again; 75 tells a log reader it was asked for.
 */
export const EXIT_RESTART = 75;

/** What would start the gateway again when it exits: a service manager, or a person at a terminal. */
export type Supervisor = 'systemd' | 'container' | 'pm2' | 'supervisord' | 'terminal' | 'unknown';

export interface SupervisorEnv {
  env: NodeJS.ProcessEnv;
  /** Standard input is a terminal: someone started it by hand. */
  stdinIsTTY: boolean;
  exists(path: string): boolean;
}

/**
 * Who runs this process. A terminal wins (a shell inside a terminal emulator may inherit a
 * unit's INVOCATION_ID); then systemd (it sets INVOCATION_ID for every unit since v232, and
 * NOTIFY_SOCKET for Type=notify), a container (Docker's /.dockerenv, Podman's
 * /run/.containerenv, the `container` variable), pm2 and supervisord by their variables.
 */
export function detectSupervisor(s: SupervisorEnv = { env: process.env, stdinIsTTY: process.stdin.isTTY === true, exists: existsSync }): Supervisor {
  if (s.stdinIsTTY) return 'terminal';
  if (s.env.INVOCATION_ID || s.env.NOTIFY_SOCKET) return 'systemd';
  if (s.exists('/.dockerenv') || s.exists('/run/.containerenv') || s.env.container) return 'container';
  if (s.env.pm_id !== undefined || s.env.PM2_HOME) return 'pm2';
  if (s.env.SUPERVISOR_ENABLED) return 'supervisord';
  return 'unknown';
}

/** What a restart will do under each supervisor, in a sentence for the confirm step and the answer. */
export function restartNote(supervisor: Supervisor): string {
  switch (supervisor) {
    case 'systemd':
      return `systemd starts it again (Restart=on-failure or always: exit code ${EXIT_RESTART})`;
    case 'container':
      return `the container engine starts it again if the container has a restart policy (--restart unless-stopped or on-failure; exit code ${EXIT_RESTART})`;
    case 'pm2':
    case 'supervisord':
      return `${supervisor} starts it again (exit code ${EXIT_RESTART})`;
    case 'terminal':
      return 'started from a terminal: nothing would start it again. Stop it there (Ctrl-C) and start it again';
    default:
      return `no service manager recognised: the gateway stops with exit code ${EXIT_RESTART} and comes back only if whatever started it starts it again`;
  }
}

export interface ClockSync {
  /** null: no tool on this machine could tell. */
  synchronized: boolean | null;
  source: 'timedatectl' | 'chronyc' | 'timesyncd' | null;
  /** What the tool said, or why none could tell. */
  detail: string;
}

/** Runs a command and resolves with its stdout; rejects on a non-zero exit, a missing program or the timeout. */
export type Runner = (file: string, args: string[]) => Promise<string>;

const runCommand: Runner = (file, args) =>
  new Promise((resolve, reject) => {
    execFile(file, args, { timeout: 2000, env: { ...process.env, LC_ALL: 'C' } }, (err, stdout, stderr) =>
      err ? reject(Object.assign(err, { stderr: String(stderr) })) : resolve(stdout),
    );
  });

/**
 * Is the system clock synchronised? Asked in turn: `timedatectl show` (systemd's
 * NTPSynchronized, whichever NTP client sets it), `chronyc tracking` (its leap status), and
 * systemd-timesyncd's flag file /run/systemd/timesync/synchronized. Stale readings from a
 * clock that drifts are as bad as none for an energy site, so the page warns when it is not.
 */
export async function clockSync(run: Runner = runCommand, exists: (p: string) => boolean = existsSync): Promise<ClockSync> {
  const tried: string[] = [];
  try {
    const out = (await run('timedatectl', ['show', '--property=NTPSynchronized', '--value'])).trim();
    if (out === 'yes' || out === 'no') return { synchronized: out === 'yes', source: 'timedatectl', detail: `NTPSynchronized=${out}` };
    tried.push(`timedatectl answered "${out.slice(0, 60)}"`);
  } catch (err) {
    tried.push(`timedatectl: ${reason(err)}`);
  }
  try {
    const out = await run('chronyc', ['-n', 'tracking']);
    const leap = /^Leap status\s*:\s*(.+)$/m.exec(out)?.[1]?.trim();
    const offset = /^System time\s*:\s*(.+)$/m.exec(out)?.[1]?.trim();
    if (leap) return { synchronized: leap !== 'Not synchronised', source: 'chronyc', detail: `leap status ${leap}${offset ? `; system time ${offset}` : ''}` };
    tried.push('chronyc tracking gave no leap status');
  } catch (err) {
    tried.push(`chronyc: ${reason(err)}`);
  }
  if (exists('/run/systemd/timesync/synchronized')) return { synchronized: true, source: 'timesyncd', detail: 'systemd-timesyncd has synchronised the clock' };
  tried.push('no /run/systemd/timesync/synchronized');
  return { synchronized: null, source: null, detail: `unknown: ${tried.join('; ')}` };
}

function reason(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { killed?: boolean; stderr?: string };
  if (e.code === 'ENOENT') return 'not installed';
  if (e.killed) return 'no answer within 2 s';
  const said = e.stderr?.trim() || e.message || String(err);
  return said.split('\n')[0]!.slice(0, 120);
}

export interface DiskInfo {
  path: string;
  totalBytes: number;
  /** Free for this (unprivileged) user: what the gateway can still write. */
  freeBytes: number;
  usedBytes: number;
  usedPercent: number;
}

/** The file system holding `path` (statfs). */
export async function diskInfo(path: string): Promise<DiskInfo> {
  const fs = await statfs(path);
  const totalBytes = fs.blocks * fs.bsize;
  const freeBytes = fs.bavail * fs.bsize;
  // Used as df counts it: all blocks minus the free ones (root's reserve counts as neither).
  const usedBytes = (fs.blocks - fs.bfree) * fs.bsize;
  const usable = usedBytes + freeBytes;
  return { path, totalBytes, freeBytes, usedBytes, usedPercent: usable > 0 ? round1((usedBytes / usable) * 100) : 0 };
}

export interface MemoryInfo {
  totalBytes: number;
  /** MemAvailable of /proc/meminfo where there is one (what can be had without swapping), else os.freemem(). */
  availableBytes: number;
  usedPercent: number;
  process: { rssBytes: number; heapUsedBytes: number; heapTotalBytes: number; externalBytes: number };
}

export async function memoryInfo(): Promise<MemoryInfo> {
  const totalBytes = os.totalmem();
  let availableBytes = os.freemem();
  const meminfo = await readFile('/proc/meminfo', 'utf8').catch(() => '');
  const kb = /^MemAvailable:\s+(\d+) kB$/m.exec(meminfo)?.[1];
  if (kb) availableBytes = Number(kb) * 1024;
  const m = process.memoryUsage();
  return {
    totalBytes,
    availableBytes,
    usedPercent: round1(((totalBytes - availableBytes) / totalBytes) * 100),
    process: { rssBytes: m.rss, heapUsedBytes: m.heapUsed, heapTotalBytes: m.heapTotal, externalBytes: m.external },
  };
}

const require = createRequire(import.meta.url);

/**
 * The installed version of a package, or null when it is not installed. Its package.json is
 * found from its entry point when the package's `exports` do not list it.
 */
export function packageVersion(name: string): string | null {
  try {
    return (require(`${name}/package.json`) as { version: string }).version;
  } catch (err) {
    // Not installed: that is the answer. Installed but its `exports` hide package.json: look beside its entry point.
    if ((err as NodeJS.ErrnoException).code !== 'ERR_PACKAGE_PATH_NOT_EXPORTED') return null;
  }
  let dir: string;
  try {
    dir = dirname(require.resolve(name));
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' ? null : `unknown (${(err as Error).message.split('\n')[0]})`;
  }
  for (let i = 0; i < 6; i++, dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === name && pkg.version) return pkg.version;
  }
  return null;
}

/** The distribution's name (`PRETTY_NAME` of /etc/os-release), else the kernel. */
export async function osName(): Promise<string> {
  const text = await readFile('/etc/os-release', 'utf8').catch(() => '');
  const pretty = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(text)?.[1];
  return pretty || `${os.type()} ${os.release()}`;
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}
