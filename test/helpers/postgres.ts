import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './reverse-proxy.js';
import type { Teardown } from './teardown.js';

const run = promisify(execFile);

/** A PostgreSQL cluster of its own for one test file: `initdb` on a temp dir, `pg_ctl` on a free port. */
export interface ThrowawayPostgres {
  /** `postgres://outpost@127.0.0.1:<port>/outpost` (trust auth, loopback only). */
  url: string;
  port: number;
  /** A connection URL for another database of this cluster (created by `createDatabase`). */
  urlFor(database: string): string;
  createDatabase(name: string): Promise<string>;
  /** Stops the server (fast shutdown); `start` brings it back on the same port and data. */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  start(): Promise<void>;
}

/**
 * The server binaries of Debian's `postgresql` package (not on PATH: /usr/lib/postgresql/<major>/bin),
 * or undefined when PostgreSQL is not installed (`.ci/run` installs it).
 */
export function postgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const majors = readdirSync(root)
      .filter((m) => existsSync(join(root, m, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a));
    if (majors.length > 0) return join(root, majors[0], 'bin');
  }
  return undefined;
}

/** `{ skip }` for tap when PostgreSQL is missing, except under CI where a missing install is a failure. */
export function postgresSkip(): { skip: string | false } {
  if (postgresBinDir() || process.env.CI) return { skip: false };
  return { skip: 'PostgreSQL is not installed (apt-get install postgresql)' };
}

/**
 * Starts a throwaway cluster, stopped and deleted at teardown. `initdb` refuses to run as root,
 * so as root (CI) the cluster belongs to the `postgres` user the Debian package creates and the
 * server runs as it (`runuser`).
 */
export async function startThrowawayPostgres(
  t: Teardown,
  options: {
    fsync?: boolean;
    /** Another server's bin dir (a build with TimescaleDB: test/central/postgres-timescale.test.ts). */
    bin?: string;
    /** More postgresql.conf lines. */
    settings?: string[];
  } = {},
): Promise<ThrowawayPostgres> {
  const bin = options.bin ?? postgresBinDir();
  if (!bin) throw new Error('PostgreSQL is not installed: apt-get install postgresql');
  const dir = await mkdtemp(join(tmpdir(), 'outpost-pg-'));
  const asRoot = userInfo().uid === 0;
  const owner = asRoot ? await postgresIds() : undefined;
  if (owner) await chown(dir, owner.uid, owner.gid);
  await chmod(dir, 0o700);
  const data = join(dir, 'data');
  const as = (cmd: string, args: string[]) => (asRoot ? run('runuser', ['-u', 'postgres', '--', cmd, ...args]) : run(cmd, args));
  await as(join(bin, 'initdb'), ['-D', data, '-U', 'outpost', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync']);
  const port = await freePort();
  // Sockets in the cluster's own dir: no clash with a system cluster on /var/run/postgresql.
  const conf = [
    `port = ${port}`,
    "listen_addresses = '127.0.0.1'",
    `unix_socket_directories = '${dir}'`,
    `fsync = ${options.fsync === false ? 'off' : 'on'}`,
    'max_connections = 100',
    'shared_buffers = 64MB',
    ...(options.settings ?? []),
  ];
  await writeFile(join(data, 'postgresql.auto.conf'), `${conf.join('\n')}\n`);
  if (owner) await chown(join(data, 'postgresql.auto.conf'), owner.uid, owner.gid);
  const log = join(dir, 'server.log');
  const pgCtl = join(bin, 'pg_ctl');
  const start = async () => {
    await as(pgCtl, ['-D', data, '-l', log, '-w', '-t', '60', 'start']);
  };
  const stop = async (mode: 'fast' | 'immediate' = 'fast') => {
    await as(pgCtl, ['-D', data, '-m', mode, '-w', '-t', '60', 'stop']).catch((err: Error) => {
      // Already stopped (a test stopped it) is fine; anything else is worth seeing.
      if (!/not running|No such file|does not exist/i.test(String((err as { stderr?: string }).stderr ?? err.message))) throw err;
    });
  };
  await start();
  const psql = join(bin, 'psql');
  const createDatabase = async (name: string) => {
    await run(psql, ['-h', '127.0.0.1', '-p', String(port), '-U', 'outpost', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-c', `CREATE DATABASE "${name}"`]);
    return urlFor(name);
  };
  const urlFor = (database: string) => `postgres://outpost@127.0.0.1:${port}/${database}`;
  await createDatabase('outpost');
  t.teardown(async () => {
    await stop('immediate');
    await rm(dir, { recursive: true, force: true });
  });
  return { url: urlFor('outpost'), port, urlFor, createDatabase, stop, start };
}

/** Runs `psql -c` against a cluster (for tests that look at the schema as an operator would). */
export async function psql(url: string, sql: string): Promise<string> {
  const bin = postgresBinDir();
  if (!bin) throw new Error('PostgreSQL is not installed');
  const { stdout } = await run(join(bin, 'psql'), [url, '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql]);
  return stdout.trim();
}

async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const { stdout } = await run('id', ['postgres']);
  const uid = /uid=(\d+)/.exec(stdout);
  const gid = /gid=(\d+)/.exec(stdout);
  if (!uid || !gid) throw new Error(`no postgres user: ${stdout}`);
  return { uid: Number(uid[1]), gid: Number(gid[1]) };
}
