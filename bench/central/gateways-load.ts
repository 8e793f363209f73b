/**
 * The simulated fleet, in one worker thread: every gateway its own MQTT 3.1.1 client (its id
 * as client id, its own TCP connection) publishing what its `mqtt` sync link publishes
 * (runtime/sync/mqtt-link.ts): the retained `online` status on `sites/<gw>/status` at connect,
 * with the `offline` will, then its outbox as QoS 1 batches on `sites/<gw>/data`, encoded by
 * the link's own `encodeBatch` (gzip level 1 JSON, runtime/sync/codec.ts), seqs increasing,
 * at most `window` unacknowledged (the link's default 16).
 *
 * Everything is encoded before 'go' and sent from pre-built buffers over raw sockets
 * (bench/mqtt-load's framing): MQTT.js tops out near 20k messages/s, and the tool must not be
 * what limits the run. The broker acknowledges at once (persistence off), so the fleet
 * empties its outboxes into the broker within a second or two and the broker holds the
 * backlog for the receiver — a fleet catching up, which is what the receiver's rate is.
 */
import { connect, type Socket } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import mqttPacket from 'mqtt-packet';
import { encodeBatch } from '../../runtime/sync/codec.js';
import { CONNACK, FrameReader, PUBACK } from '../mqtt-load/frames.js';
import { batchOf, batchesPerGateway, gatewayId, type IngestPlan } from './plan.js';

export interface FleetData {
  host: string;
  port: number;
  plan: IngestPlan;
  window: number;
}

export type FleetCommand = { type: 'go' } | { type: 'close' };
export type FleetReport =
  | { type: 'ready'; encodedBytes: number; messages: number; encodeMs: number; connectMs: number }
  | { type: 'done'; acked: number; unexpectedAcks: number; lastAckNs: bigint; errors: string[] }
  | { type: 'failed'; error: string }
  | { type: 'closed' };

/** Connections opened at once (the broker's listen backlog is finite). */
const CONNECT_CONCURRENCY = 64;
const CONNACK_TIMEOUT_MS = 20_000;

interface GatewayStream {
  id: string;
  socket: Socket;
  /** Packets back to back: packet i is bytes[offsets[i], offsets[i + 1]); packet id i + 1. */
  bytes: Buffer;
  offsets: Uint32Array;
  next: number;
  acked: number;
  ackedInChunk: number;
  inFlight: Uint8Array;
  closed: string | undefined;
}

const data = workerData as FleetData;
const parent = parentPort!;
const report = (r: FleetReport) => parent.postMessage(r);

async function encodeGateway(g: number): Promise<{ bytes: Buffer; offsets: Uint32Array }> {
  const p = data.plan;
  const gw = gatewayId(g);
  const root = `sites/${gw}`;
  const packets: Buffer[] = [];
  let id = 0;
  const publish = (topic: string, payload: Buffer, retain: boolean) =>
    packets.push(mqttPacket.generate({ cmd: 'publish', topic, payload, qos: 1, retain, dup: false, messageId: (id++ % 65535) + 1 }));
  publish(`${root}/status`, Buffer.from(JSON.stringify({ state: 'online', gatewayId: gw, since: Date.now() })), true);
  const batches = batchesPerGateway(p);
  const payloads = await Promise.all(Array.from({ length: batches }, (_, b) => encodeBatch(batchOf(p, g, b), 1)));
  for (const payload of payloads) publish(`${root}/data`, payload, false);
  const offsets = new Uint32Array(packets.length + 1);
  for (let i = 0; i < packets.length; i++) offsets[i + 1] = offsets[i]! + packets[i]!.length;
  return { bytes: Buffer.concat(packets), offsets };
}

function openGateway(g: number, encoded: { bytes: Buffer; offsets: Uint32Array }): Promise<GatewayStream> {
  const gw = gatewayId(g);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: data.host, port: data.port });
    socket.setNoDelay(true);
    const stream: GatewayStream = {
      id: gw,
      socket,
      ...encoded,
      next: 0,
      acked: 0,
      ackedInChunk: 0,
      inFlight: new Uint8Array(65536),
      closed: undefined,
    };
    let connected = false;
    const timer = setTimeout(() => {
      reject(new Error(`${gw}: no CONNACK within ${CONNACK_TIMEOUT_MS / 1000} s`));
      socket.destroy();
    }, CONNACK_TIMEOUT_MS);
    const reader = new FrameReader((type, _flags, buf, body) => {
      if (!connected) {
        clearTimeout(timer);
        if (type !== CONNACK || buf[body + 1] !== 0) return reject(new Error(`${gw}: CONNECT refused (packet ${type}, code ${buf[body + 1]})`));
        connected = true;
        return resolve(stream);
      }
      if (type !== PUBACK) return;
      const pid = (buf[body]! << 8) | buf[body + 1]!;
      if (stream.inFlight[pid] === 1) {
        stream.inFlight[pid] = 0;
        stream.ackedInChunk++;
      } else unexpectedAcks++;
    });
    socket.on('data', (chunk: Buffer) => {
      reader.push(chunk);
      if (stream.ackedInChunk > 0) refill(stream);
    });
    let lastError = '';
    socket.on('error', (err) => {
      lastError = err.message;
      if (!connected) reject(new Error(`${gw}: ${err.message}`));
    });
    socket.on('close', () => {
      stream.closed = lastError || 'closed by the broker';
      if (!connected) reject(new Error(`${gw}: closed before CONNACK (${stream.closed})`));
      else if (stream.acked < total(stream) && !closing)
        fail(`${gw}: connection lost after ${stream.acked} of ${total(stream)} acknowledged: ${stream.closed}`);
    });
    // As the link connects: clean session, keepalive off for the bench, the offline will retained.
    const will = { topic: `sites/${gw}/status`, payload: Buffer.from(JSON.stringify({ state: 'offline', gatewayId: gw })), qos: 1 as const, retain: true };
    socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: gw, clean: true, keepalive: 0, will }));
  });
}

const total = (s: GatewayStream): number => s.offsets.length - 1;
let unexpectedAcks = 0;
let ackedAll = 0;
let expectedAll = 0;
let lastAckNs = 0n;
let closing = false;
const errors: string[] = [];
let finished = false;

function fail(error: string): void {
  errors.push(error);
  finish();
}

function finish(): void {
  if (finished) return;
  finished = true;
  report({ type: 'done', acked: ackedAll, unexpectedAcks, lastAckNs, errors });
}

/** Up to `count` more packets of one gateway, contiguous in its buffer: one write. */
function send(s: GatewayStream, count: number): void {
  const end = Math.min(total(s), s.next + count);
  if (end === s.next) return;
  for (let j = s.next; j < end; j++) s.inFlight[(j % 65535) + 1] = 1;
  s.socket.write(s.bytes.subarray(s.offsets[s.next], s.offsets[end]));
  s.next = end;
}

function refill(s: GatewayStream): void {
  const n = s.ackedInChunk;
  s.ackedInChunk = 0;
  s.acked += n;
  ackedAll += n;
  lastAckNs = process.hrtime.bigint();
  send(s, n);
  if (ackedAll === expectedAll) finish();
}

async function main(): Promise<void> {
  const p = data.plan;
  let started = performance.now();
  const encoded: Array<{ bytes: Buffer; offsets: Uint32Array }> = [];
  // A few gateways at a time: gzip runs in libuv's pool, the buffers of one gateway are built together.
  for (let g = 0; g < p.gateways; g += 16) {
    const group = await Promise.all(Array.from({ length: Math.min(16, p.gateways - g) }, (_, i) => encodeGateway(g + i)));
    encoded.push(...group);
  }
  const encodeMs = performance.now() - started;
  started = performance.now();
  const streams: GatewayStream[] = new Array(p.gateways);
  let nextToOpen = 0;
  await Promise.all(
    Array.from({ length: Math.min(CONNECT_CONCURRENCY, p.gateways) }, async () => {
      while (nextToOpen < p.gateways) {
        const g = nextToOpen++;
        streams[g] = await openGateway(g, encoded[g]!);
      }
    }),
  );
  const connectMs = performance.now() - started;
  expectedAll = streams.reduce((n, s) => n + total(s), 0);
  const encodedBytes = encoded.reduce((n, e) => n + e.bytes.length, 0);
  parent.on('message', (cmd: FleetCommand) => {
    if (cmd.type === 'go') for (const s of streams) send(s, data.window);
    else if (cmd.type === 'close') {
      closing = true;
      void Promise.all(
        streams.map(
          (s) =>
            new Promise<void>((resolve) => {
              if (s.closed !== undefined) return resolve();
              s.socket.once('close', () => resolve());
              s.socket.end(mqttPacket.generate({ cmd: 'disconnect' }));
              setTimeout(() => s.socket.destroy(), 3000).unref();
            }),
        ),
      ).then(() => {
        report({ type: 'closed' });
        parent.close();
      });
    }
  });
  report({ type: 'ready', encodedBytes, messages: expectedAll, encodeMs, connectMs });
}

main().catch((err: Error) => report({ type: 'failed', error: err.message }));
