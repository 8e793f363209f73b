/**
 * The brokers under test, each started in its own process pinned to one core (taskset), with
 * what is needed to tell afterwards whether it is still alive and, if not, why it died.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { delimiter, join } from 'node:path';

export const hasTaskset = spawnSync('taskset', ['-c', '0', 'true']).status === 0;
const TAIL_BYTES = 2048;

export interface BrokerProcess {
  name: string;
  port: number;
  /** Undefined while alive; how it ended otherwise. */
  death(): string | undefined;
  /** The last 2 KB the process wrote to stderr. */
  stderrTail(): string;
  stop(): Promise<void>;
}

/** Keeps the last TAIL_BYTES of a stream (and keeps reading, so a chatty child never blocks on a full pipe). */
function tailOf(stream: NodeJS.ReadableStream): () => string {
  let tail = '';
  stream.on('data', (d: Buffer) => (tail = (tail + d.toString()).slice(-TAIL_BYTES)));
  return () => tail;
}

function spawnPinned(core: number, cmd: string, args: string[]): ChildProcess {
  // taskset execs the command, so the child's pid is the broker's and every thread it starts stays on `core`.
  return hasTaskset
    ? spawn('taskset', ['-c', String(core), cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

function waitForLine(child: ChildProcess, re: RegExp): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = re.exec(out);
      if (m) resolve(m);
    });
    child.once('exit', (code, signal) => reject(new Error(`exited (${code ?? signal}) before it was ready: ${out.slice(-2000)}`)));
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 5000).unref();
  });
}

function wrap(name: string, port: number, child: ChildProcess, stderrTail: () => string): BrokerProcess {
  return {
    name,
    port,
    death: () => (child.exitCode !== null ? `exit code ${child.exitCode}` : child.signalCode !== null ? `signal ${child.signalCode}` : undefined),
    stderrTail,
    stop: () => stopChild(child),
  };
}

/** Starts a process that prints its port on stdout, pinned to `core`. */
async function startNodePeer(name: string, core: number, script: string, args: string[], portLine: RegExp): Promise<BrokerProcess> {
  const child = spawnPinned(core, process.execPath, [script, ...args]);
  const stderrTail = tailOf(child.stderr!);
  const m = await waitForLine(child, portLine);
  return wrap(name, Number(m[1]), child, stderrTail);
}

/** Outpost exactly as a site runs it: the CLI, storage on, in its own temporary data directory. */
export async function startOutpost(cliJs: string, dir: string, core: number): Promise<BrokerProcess> {
  const cfg = join(dir, 'outpost.yaml');
  await mkdir(dir, { recursive: true });
  await writeFile(cfg, `gateway: { id: bench }\ndataDir: ${join(dir, 'data')}\nlog: { level: warn }\nbroker: { mqtt: { port: 0 } }\nhttp: { port: 0 }\n`);
  return startNodePeer('outpost', core, cliJs, ['start', '-c', cfg], /MQTT on 127\.0\.0\.1:(\d+)/);
}

export function startAedes(serverJs: string, core: number): Promise<BrokerProcess> {
  return startNodePeer('bare aedes', core, serverJs, [], /listening (\d+)/);
}

export function startSink(sinkJs: string, core: number): Promise<BrokerProcess> {
  return startNodePeer('tcp sink', core, sinkJs, [], /listening (\d+)/);
}

/** Debian installs mosquitto in /usr/sbin, which is not on every user's PATH. */
export function findMosquitto(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin'];
  return dirs.map((d) => join(d, 'mosquitto')).find((p) => existsSync(p));
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`mosquitto exited (${child.exitCode}) before it listened`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startMosquitto(binary: string, dir: string, core: number): Promise<BrokerProcess> {
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  await writeFile(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence false',
      // Aedes has no per-client limit on outgoing QoS 1 messages in flight; lift Mosquitto's
      // default of 20 so its QoS 1 deliveries are not throttled by a window Aedes does not have.
      'max_inflight_messages 0',
      // 0 = no limit on queued messages per client. Aedes queues for a slow subscriber without
      // limit (it only stops reading the publisher), whereas Mosquitto's default of 1000 would
      // make it drop QoS 1 messages under this load: unlimited compares like for like, and any
      // drop that remains shows in the delivered count.
      'max_queued_messages 0',
      // Per-message logging (-v) would measure the log, not the broker.
      'log_type error',
      'log_type warning',
      '',
    ].join('\n'),
  );
  const child = spawnPinned(core, binary, ['-c', conf]);
  const stderrTail = tailOf(child.stderr!);
  tailOf(child.stdout!);
  await waitForPort(port, child, 10_000);
  return wrap('mosquitto', port, child, stderrTail);
}
