import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile, chmod } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { REPO_ROOT } from './process.js';
import type { Teardown } from './teardown.js';

export interface RunningProxy {
  /** Base URL clients use: `http(s)://127.0.0.1:<port>`. */
  url: string;
  port: number;
  /** What the proxy printed (for a failing test's message). */
  output(): string;
}

/** A free TCP port on 127.0.0.1 (closed again before use: the proxy binds it right after). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/**
 * The code block of `lang` in the README's "Behind a reverse proxy" section: the tests run
 * exactly what users copy, with test ports and certificate paths substituted.
 */
export async function readmeSnippet(lang: 'nginx' | 'caddy' | 'yaml'): Promise<string> {
  const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### Behind a reverse proxy'));
  const m = new RegExp('```' + lang + '\\n([\\s\\S]*?)```').exec(section);
  if (!m) throw new Error(`README: no ${lang} block under "Behind a reverse proxy"`);
  return m[1]!;
}

async function waitForPort(port: number, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`proxy exited (${child.exitCode}):\n${output()}`);
    const open = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`proxy did not listen on ${port} within 10 s:\n${output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function run(t: Teardown, command: string, args: string[], port: number, tls: boolean, env: NodeJS.ProcessEnv = {}): Promise<RunningProxy> {
  // Its own process group: nginx workers and socat's forked children outlive a killed parent
  // (and hold our pipes open) unless the whole group is killed.
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env }, detached: true });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  t.teardown(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  });
  await waitForPort(port, child, () => out);
  return { url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`, port, output: () => out };
}

async function tempDir(t: Teardown, name: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `outpost-${name}-`));
  // nginx started by root runs its workers as nobody: they write the temp folders below.
  await chmod(dir, 0o777);
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * nginx in front of the gateway. `server` is a `server { ... }` block (plus what goes beside
 * it in `http {}`, such as the README's `map`); the test's port replaces `listen 443`.
 */
export async function startNginx(t: Teardown, httpBlock: string, options: { tls: boolean }): Promise<RunningProxy> {
  const dir = await tempDir(t, 'nginx');
  const port = await freePort();
  const conf = [
    'worker_processes 1;',
    `pid ${dir}/nginx.pid;`,
    `error_log ${dir}/error.log warn;`,
    'events { worker_connections 256; }',
    'http {',
    '  access_log off;',
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((k) => `  ${k}_temp_path ${dir}/${k};`),
    httpBlock.replace(/listen 443 ssl;/, `listen 127.0.0.1:${port}${options.tls ? ' ssl' : ''};`),
    '}',
  ].join('\n');
  await writeFile(join(dir, 'nginx.conf'), conf);
  return run(t, '/usr/sbin/nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], port, options.tls);
}

/** The README's nginx snippet pointed at the gateway's port, with the test certificate. */
export async function readmeNginx(t: Teardown, gatewayPort: number, cert: { certFile: string; keyFile: string }): Promise<RunningProxy> {
  const snippet = (await readmeSnippet('nginx'))
    .replace('http://127.0.0.1:8080', `http://127.0.0.1:${gatewayPort}`)
    .replace('/etc/outpost/tls/fullchain.pem', cert.certFile)
    .replace('/etc/outpost/tls/privkey.pem', cert.keyFile);
  return startNginx(t, snippet, { tls: true });
}

/** The README's Caddyfile pointed at the gateway's port, on a test port with the test certificate. */
export async function readmeCaddy(t: Teardown, gatewayPort: number, cert: { certFile: string; keyFile: string }): Promise<RunningProxy> {
  const dir = await tempDir(t, 'caddy');
  const port = await freePort();
  const site = (await readmeSnippet('caddy'))
    .replace('gw.example.com', `https://127.0.0.1:${port}`)
    .replace('127.0.0.1:8080', `127.0.0.1:${gatewayPort}`)
    .replace('/etc/outpost/tls/fullchain.pem', cert.certFile)
    .replace('/etc/outpost/tls/privkey.pem', cert.keyFile);
  // No admin endpoint, no port-80 redirect listener, state in the temp dir: a test, not a service.
  const caddyfile = `{\n  admin off\n  auto_https disable_redirects\n  storage file_system ${dir}/data\n}\n${site}`;
  await writeFile(join(dir, 'Caddyfile'), caddyfile);
  return run(t, '/usr/bin/caddy', ['run', '--config', join(dir, 'Caddyfile'), '--adapter', 'caddyfile'], port, true, {
    HOME: dir,
    XDG_DATA_HOME: dir,
    XDG_CONFIG_HOME: dir,
  });
}

/** A plain TCP forwarder (socat): what `ssh -L` or a port-forward does, no headers added. */
export async function startSocat(t: Teardown, targetPort: number): Promise<RunningProxy> {
  const port = await freePort();
  return run(t, 'socat', [`TCP-LISTEN:${port},bind=127.0.0.1,fork,reuseaddr`, `TCP:127.0.0.1:${targetPort}`], port, false);
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * One HTTP(S) request with full control: the source address (127.0.0.2, 127.0.0.3… stand for
 * different remote clients), any Host/Origin, and a pinned CA for the test certificate.
 */
export function rawRequest(
  url: string,
  o: { method?: string; headers?: Record<string, string>; body?: string; localAddress?: string; ca?: string } = {},
): Promise<RawResponse> {
  const u = new URL(url);
  // agent: false — one connection per request, closed after it: nothing lingers past a test.
  const options = {
    method: o.method ?? 'GET',
    headers: o.headers ?? {},
    localAddress: o.localAddress,
    agent: false,
    ...(u.protocol === 'https:' ? { ca: o.ca } : {}),
  };
  return new Promise((resolve, reject) => {
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, options, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}
