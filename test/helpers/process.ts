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
export function outpostCommand(args: string[]): { command: string; args: string[] } {
  if (existsSync(BUILT_CLI) && process.env.OUTPOST_TEST_FROM_SOURCE !== '1') return { command: process.execPath, args: [BUILT_CLI, ...args] };
  return { command: process.execPath, args: ['--import', 'tsx', SOURCE_CLI, ...args] };
}

export interface OutpostProcess {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the HTTP URL once the process printed its ready line. */
  ready: Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function spawnOutpost(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): OutpostProcess {
  const { command, args: full } = outpostCommand(args);
  // The child rejects OUTPOST_* variables that name no config key, so test switches stay here.
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
  delete env.OUTPOST_TEST_FROM_SOURCE;
  const child = spawn(command, full, { cwd: options.cwd ?? REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
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
