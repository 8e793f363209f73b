import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BUILT_CLI = join(REPO_ROOT, 'dist', 'runtime', 'cli.js');
const SOURCE_CLI = join(REPO_ROOT, 'runtime', 'cli.ts');

/**
 * Command line that runs the real `outpost` CLI: the build in dist/ (what `npm test`
 * and production run) or, when there is no build, the sources through tsx.
 */
export function outpostCommand(args: string[], nodeArgs: string[] = []): { command: string; args: string[] } {
  if (existsSync(BUILT_CLI) && process.env.OUTPOST_TEST_FROM_SOURCE !== '1') return { command: process.execPath, args: [...nodeArgs, BUILT_CLI, ...args] };
  return { command: process.execPath, args: [...nodeArgs, '--import', 'tsx', SOURCE_CLI, ...args] };
}

/**
 * The V8 heap Node gives itself on the reference hardware (1 GB of RAM): an old generation
 * of a quarter of physical memory and 1 MB semi-spaces (V8 Heap::YoungGenerationSizeFromOld-
 * GenerationSize, low-memory ratio). On this 24 GB test machine V8 would pick 16 MB
 * semi-spaces and a multi-GB old generation instead, and RSS under load would say little
 * about a Pi. Tests that bound the gateway's memory run it with these.
 */
/**
 * The first lines of an `outpost.yaml` for a test process: the gateway (`id`, and `timezone`
 * when given), its data dir, MQTT and HTTP on loopback (port 0: any free port), the log level.
 * The test appends the rest (datapoints, adapters, sync).
 */
export function processYamlHead(o: { id: string; timezone?: string; dataDir: string; log?: string; httpPort?: number }): string {
  const gateway = o.timezone ? `{ id: ${o.id}, timezone: ${o.timezone} }` : `{ id: ${o.id} }`;
  return `gateway: ${gateway}
dataDir: ${o.dataDir}
log: { level: ${o.log ?? 'info'} }
broker: { mqtt: { host: 127.0.0.1, port: 0 } }
http: { host: 127.0.0.1, port: ${o.httpPort ?? 0} }
`;
}

export const PI_HEAP_NODE_ARGS = ['--max-old-space-size=256', '--max-semi-space-size=1'];

export interface OutpostProcess {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the HTTP URL once the process printed its ready line. */
  ready: Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function spawnOutpost(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; nodeArgs?: string[] } = {}): OutpostProcess {
  const { command, args: full } = outpostCommand(args, options.nodeArgs);
  // The child rejects OUTPOST_* variables that name no config key, so test switches stay here.
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
  delete env.OUTPOST_TEST_FROM_SOURCE;
  const child = spawn(command, full, { cwd: options.cwd ?? REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const ready = new Promise<string>((resolve, reject) => {
    const onData = (): void => {
      const m = /ready: (http:\/\/\S+)/.exec(out);
      if (m) {
        child.stdout!.off('data', onData);
        resolve(m[1]!);
      }
    };
    child.stdout!.on('data', onData);
    void exited.then(({ code, signal }) => reject(new Error(`outpost exited (${code ?? signal}) before ready:\n${out}\n${err}`)));
  });
  ready.catch(() => undefined);
  return { child, stdout: () => out, stderr: () => err, ready, exited };
}
