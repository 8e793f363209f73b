import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile, chmod } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Teardown } from '../../helpers/teardown.js';

const run = promisify(execFile);
export const MOSQUITTO = process.env.MOSQUITTO_BIN ?? '/usr/sbin/mosquitto';

export interface MosquittoOptions {
  /** username → password; anonymous access is off when given. */
  users?: Record<string, string>;
  tls?: { caFile: string; certFile: string; keyFile: string; requireCertificate?: boolean };
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** A real Mosquitto on a free loopback port, killed in teardown. */
export class Mosquitto {
  proc: ChildProcess | undefined;
  log = '';
  private constructor(
    readonly port: number,
    readonly dir: string,
    readonly conf: string,
    readonly tls: boolean,
  ) {}

  get url(): string {
    return `${this.tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${this.port}`;
  }

  static async create(t: Teardown, options: MosquittoOptions = {}): Promise<Mosquitto> {
    const dir = await mkdtemp(join(tmpdir(), 'outpost-mosq-'));
    await chmod(dir, 0o755);
    const port = await freePort();
    const lines = [
      `listener ${port} 127.0.0.1`,
      'persistence true',
      `persistence_location ${dir}/`,
      'autosave_interval 0',
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      'max_queued_messages 0',
      'max_inflight_messages 0',
    ];
    if (process.getuid?.() === 0) lines.push('user root');
    if (options.users) {
      const pw = join(dir, 'passwd');
      await writeFile(pw, '');
      for (const [u, p] of Object.entries(options.users)) await run('mosquitto_passwd', ['-b', pw, u, p]);
      await chmod(pw, 0o600);
      lines.push('allow_anonymous false', `password_file ${pw}`);
    } else {
      lines.push('allow_anonymous true');
    }
    if (options.tls) {
      lines.push(`cafile ${options.tls.caFile}`, `certfile ${options.tls.certFile}`, `keyfile ${options.tls.keyFile}`);
      if (options.tls.requireCertificate) lines.push('require_certificate true');
    }
    const conf = join(dir, 'mosquitto.conf');
    await writeFile(conf, lines.join('\n') + '\n');
    const m = new Mosquitto(port, dir, conf, options.tls !== undefined);
    t.teardown(async () => {
      await m.stop();
      await rm(dir, { recursive: true, force: true });
    });
    await m.start();
    return m;
  }

  async start(): Promise<void> {
    const proc = spawn(MOSQUITTO, ['-c', this.conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = proc;
    proc.stderr!.on('data', (d: Buffer) => {
      if (this.log.length < 100_000) this.log += d.toString();
    });
    const deadline = Date.now() + 5000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`mosquitto exited with ${proc.exitCode}: ${this.log}`);
      const ok = await new Promise<boolean>((resolve) => {
        const s = connect(this.port, '127.0.0.1', () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      });
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${this.port}: ${this.log}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /**
   * SIGTERM is a broker restart as an operator does it: Mosquitto saves its persistent
   * sessions (and the messages queued for them) on the way down. SIGKILL loses them.
   */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.kill(signal);
    await exited;
  }

  async restart(downMs = 0): Promise<void> {
    await this.stop('SIGTERM');
    if (downMs) await new Promise((r) => setTimeout(r, downMs));
    await this.start();
  }
}

/** A throw-away CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl. */
export async function makeTestPki(
  t: Teardown,
): Promise<{ dir: string; ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string; otherCa: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-pki-'));
  await chmod(dir, 0o755);
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const p = (f: string): string => join(dir, f);
  const ossl = (...args: string[]) => run('openssl', args, { cwd: dir });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await ossl('req', '-x509', ...ec, '-keyout', p('ca.key'), '-out', p('ca.crt'), '-days', '2', '-subj', '/CN=Outpost Test CA');
  await ossl('req', '-x509', ...ec, '-keyout', p('other.key'), '-out', p('other.crt'), '-days', '2', '-subj', '/CN=Some Other CA');
  await writeFile(p('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  await ossl('req', ...ec, '-keyout', p('server.key'), '-out', p('server.csr'), '-subj', '/CN=localhost');
  await ossl(
    'x509',
    '-req',
    '-in',
    p('server.csr'),
    '-CA',
    p('ca.crt'),
    '-CAkey',
    p('ca.key'),
    '-CAcreateserial',
    '-out',
    p('server.crt'),
    '-days',
    '2',
    '-extfile',
    p('server.ext'),
  );
  await writeFile(p('client.ext'), 'extendedKeyUsage=clientAuth\n');
  await ossl('req', ...ec, '-keyout', p('client.key'), '-out', p('client.csr'), '-subj', '/CN=gw-tls');
  await ossl(
    'x509',
    '-req',
    '-in',
    p('client.csr'),
    '-CA',
    p('ca.crt'),
    '-CAkey',
    p('ca.key'),
    '-CAcreateserial',
    '-out',
    p('client.crt'),
    '-days',
    '2',
    '-extfile',
    p('client.ext'),
  );
  for (const f of ['server.key', 'client.key', 'ca.key']) await chmod(p(f), 0o644);
  return {
    dir,
    ca: p('ca.crt'),
    serverCert: p('server.crt'),
    serverKey: p('server.key'),
    clientCert: p('client.crt'),
    clientKey: p('client.key'),
    otherCa: p('other.crt'),
  };
}
