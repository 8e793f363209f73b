/**
 * Shared pieces of the proof suite (issue 11): the REAL `outpost start` process on loopback,
 * its RSS from /metrics, a seeded PRNG, and a well-behaved "witness" MQTT.js client whose
 * every acknowledged QoS 1 value must end up stored and delivered while the torture runs.
 */
import mqtt from 'mqtt';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PI_HEAP_NODE_ARGS, spawnOutpost, type OutpostProcess } from '../helpers/process.js';
import { mulberry32 } from '../helpers/rng.js';
import { tempDir, type Teardown } from '../helpers/teardown.js';

/**
 * Aedes 1.2.0 keeps a client registered for ever when its connection closes between
 * authentication and registration (test/proof/broker-register-race.test.ts). Until
 * runtime/bus.ts unregistered such clients, the assertions that depend on it were todo;
 * OUTPOST_PROOF_EXPECT_REGISTER_FIX=0 marks them todo again (to check an Aedes upgrade).
 */
export const REGISTER_RACE_FIXED = process.env.OUTPOST_PROOF_EXPECT_REGISTER_FIX !== '0';
export const REGISTER_RACE_TODO = REGISTER_RACE_FIXED
  ? {}
  : { todo: 'Aedes 1.2.0 registers clients after their close; needs the runtime/bus.ts fix from the issue 11 report' };

export interface RunningOutpost {
  proc: OutpostProcess;
  httpUrl: string;
  mqttPort: number;
  dir: string;
  /** True while the child process has not exited. */
  alive(): boolean;
}

/**
 * Starts `outpost start -c <temp yaml>` with loopback listeners on free ports and a temp
 * data dir. `extraBroker` is merged into the `broker:` flow mapping (e.g. `limits: {...}`).
 */
export async function startOutpostProcess(t: Teardown, options: { extraBroker?: string; extraYaml?: string } = {}): Promise<RunningOutpost> {
  const dir = await tempDir(t, 'outpost-proof-');
  const file = join(dir, 'outpost.yaml');
  const broker = ['mqtt: { host: 127.0.0.1, port: 0 }', 'websocket: { enabled: false }', ...(options.extraBroker ? [options.extraBroker] : [])].join(', ');
  await writeFile(
    file,
    [
      'gateway: { id: proof }',
      `dataDir: ${JSON.stringify(join(dir, 'data'))}`,
      // warn: the refusals the torture provokes are logged, but not every debug line.
      'log: { level: warn }',
      `broker: { ${broker} }`,
      'http: { host: 127.0.0.1, port: 0 }',
      'dashboard: { enabled: false }',
      // The proofs read /metrics and values without logging in: the documented opt-in for local
      // tools, read-only (test/e2e and test/security use the default and the local token).
      'auth: { loopback: viewer }',
      options.extraYaml ?? '',
      '',
    ].join('\n'),
  );
  // Memory bounds here are about the reference 1 GB machine: run with the heap V8 sizes there.
  const proc = spawnOutpost(['start', '-c', file], { env: withoutTestSwitches(), nodeArgs: PI_HEAP_NODE_ARGS });
  t.teardown(() => {
    if (proc.child.exitCode === null) proc.child.kill('SIGKILL');
  });
  const httpUrl = await proc.ready;
  const m = /MQTT on 127\.0\.0\.1:(\d+)/.exec(proc.stdout());
  if (!m) throw new Error(`no MQTT port in: ${proc.stdout()}`);
  return { proc, httpUrl, mqttPort: Number(m[1]), dir, alive: () => proc.child.exitCode === null && proc.child.signalCode === null };
}

/**
 * The child refuses OUTPOST_* variables that name no config key, so the proof suite's own
 * switches (OUTPOST_PROOF_LONG, OUTPOST_FUZZ_SEED, OUTPOST_SOAK_MINUTES, ...) are unset for it.
 */
export function withoutTestSwitches(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of Object.keys(process.env)) if (/^OUTPOST_(PROOF|FUZZ|FLOOD|SOAK|BENCH)_/.test(name)) env[name] = undefined;
  return env;
}

/** Resident set size of the gateway process as it reports it on /metrics (prom-client default metric). */
export async function rssBytes(httpUrl: string): Promise<number> {
  return (await memorySample(httpUrl)).rss;
}

/** One scrape of the gateway's memory figures (prom-client's default process and heap metrics). */
export interface MemorySample {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
}

export async function memorySample(httpUrl: string): Promise<MemorySample> {
  const text = await (await fetch(`${httpUrl}/metrics`)).text();
  const read = (name: string): number => {
    const m = new RegExp(`^outpost_${name} (\\d+(?:\\.\\d+)?(?:e\\+\\d+)?)$`, 'm').exec(text);
    if (!m) throw new Error(`outpost_${name} missing from /metrics`);
    return Number(m[1]);
  };
  return {
    rss: read('process_resident_memory_bytes'),
    heapTotal: read('nodejs_heap_size_total_bytes'),
    heapUsed: read('nodejs_heap_size_used_bytes'),
    external: read('nodejs_external_memory_bytes'),
  };
}

const mib = (b: number): string => (b / 2 ** 20).toFixed(1);
/** "rss 200.1 (heap 90.2 of 120.0, external 12.3) MB": where a peak sits, for a failing bound's message. */
export function describeMemory(s: MemorySample): string {
  return `rss ${mib(s.rss)} (heap ${mib(s.heapUsed)} used of ${mib(s.heapTotal)}, external ${mib(s.external)}) MB`;
}

/** Samples memory every `everyMs` until stopped; keeps the maximum RSS, the sample it came from, and all RSS samples. */
export function rssSampler(httpUrl: string, everyMs = 500): { stop(): Promise<{ max: number; peak: MemorySample | undefined; samples: number[] }> } {
  const samples: number[] = [];
  let peak: MemorySample | undefined;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        const s = await memorySample(httpUrl);
        samples.push(s.rss);
        if (!peak || s.rss > peak.rss) peak = s;
      } catch (err) {
        // A failed scrape during a flood is itself a finding; keep it visible in the test output.
        samples.push(Number.NaN);
        console.error(`RSS scrape failed: ${(err as Error).message}`);
      }
      await sleep(everyMs);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return { max: Math.max(...samples.filter((s) => Number.isFinite(s))), peak, samples };
    },
  };
}

/** mulberry32: small, fast, seedable; the fuzz corpus is reproducible from the seed it prints. */
export function prng(seed: number): { next(): number; int(n: number): number; pick<T>(xs: readonly T[]): T; bytes(n: number): Buffer } {
  const next = mulberry32(seed);
  const int = (n: number): number => Math.floor(next() * n);
  return {
    next,
    int,
    pick: (xs) => xs[int(xs.length)]!,
    bytes: (n) => {
      const b = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i++) b[i] = int(256);
      return b;
    },
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every 100 ms until it returns true or `withinMs` passed; resolves with the last answer. */
export async function eventually(check: () => Promise<boolean> | boolean, withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(100);
  }
}

/**
 * A well-behaved site client: subscribes to its own datapoint at QoS 1 and publishes a
 * numbered value every `everyMs` at QoS 1 from its own connection. It records which values
 * the broker acknowledged, which it received back, and any drop of its connection.
 */
export class Witness {
  readonly acked: number[] = [];
  /** Date.now() of each PUBACK, to show the service never stalled for long. */
  readonly ackTimes: number[] = [];
  readonly received = new Set<number>();
  readonly failures: string[] = [];
  disconnects = 0;
  private timer: NodeJS.Timeout | undefined;
  private next = 0;
  private inFlight = 0;
  readonly tBase = Date.now() - 3_600_000;

  private constructor(
    readonly client: mqtt.MqttClient,
    readonly datapoint: string,
  ) {}

  static async connect(port: number, datapoint: string): Promise<Witness> {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
      clientId: `witness-${datapoint}`,
      reconnectPeriod: 0,
      keepalive: 10,
      connectTimeout: 5000,
    });
    const w = new Witness(client, datapoint);
    client.on('close', () => w.disconnects++);
    client.on('error', (err) => w.failures.push(`error: ${err.message}`));
    client.on('message', (_topic, payload) => {
      const msg = JSON.parse(payload.toString()) as { v: number };
      w.received.add(msg.v);
    });
    await client.subscribeAsync(`outpost/dp/${datapoint}/value`, { qos: 1 });
    return w;
  }

  /** Starts publishing; at most 8 unacknowledged publications at a time so a stall shows. */
  start(everyMs: number): void {
    this.timer = setInterval(() => {
      if (this.inFlight >= 8 || !this.client.connected) return;
      const n = this.next++;
      this.inFlight++;
      this.client.publish(`outpost/dp/${this.datapoint}/value`, JSON.stringify({ v: n, t: this.tBase + n }), { qos: 1 }, (err) => {
        this.inFlight--;
        if (err) this.failures.push(`publish ${n}: ${err.message}`);
        else {
          this.acked.push(n);
          this.ackTimes.push(Date.now());
        }
      });
    }, everyMs);
  }

  /** Stops publishing and waits (bounded by `withinMs`) for outstanding acknowledgements and deliveries. */
  async stop(withinMs = 10_000): Promise<void> {
    clearInterval(this.timer);
    const deadline = Date.now() + withinMs;
    while ((this.inFlight > 0 || this.acked.some((n) => !this.received.has(n))) && Date.now() < deadline) await sleep(50);
  }

  /** Acknowledged values not (yet) delivered back to the witness's own QoS 1 subscription. */
  undelivered(): number[] {
    return this.acked.filter((n) => !this.received.has(n));
  }

  get sent(): number {
    return this.next;
  }

  /** Values of this witness's datapoint the gateway has stored, read over REST. */
  async stored(httpUrl: string): Promise<Set<number>> {
    const res = await fetch(`${httpUrl}/api/datapoints/${this.datapoint}/values?from=${this.tBase}&to=${this.tBase + this.next + 1}&limit=10000`);
    if (!res.ok) throw new Error(`REST ${res.status}: ${await res.text()}`);
    const body = (await res.json()) as { values: Array<{ v: number }> };
    return new Set(body.values.map((p) => p.v));
  }

  async end(): Promise<void> {
    clearInterval(this.timer);
    await this.client.endAsync(true);
  }
}
