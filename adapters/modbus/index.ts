import { z } from 'zod';
import { resolve } from 'node:path';
import { defineAdapter, type AdapterContext, type CheckEnv, type CheckProblem } from '../../runtime/adapter.js';
import { OutpostError } from '../../core/errors.js';
import './errors.js';
import type { PortLease } from '../../runtime/ports.js';
import { ModbusBus } from './bus.js';
import { DevicePoller } from './device.js';
import type { DeviceOptions } from './device-options.js';
import { loadSunSpec, type SunSpecDefinitions } from './sunspec.js';
import { REGISTER_TYPES } from './codec.js';
import { loadTemplates, resolvePoints, type DeviceTemplate } from './templates.js';
import { RtuLine } from './transport-rtu.js';
import { TcpLink } from './transport-tcp.js';
import { modbusStatusSchema, type ModbusStatusInfo } from './status-schema.js';

/** Baud rates RS-485 meters offer (Modbus over Serial Line §2.5.1: 9600 and 19200 required, others optional). */
const BAUD_RATES = [1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] as const;
const NAME = /^[a-z0-9][a-z0-9_-]*$/;
const PREFIX = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/;

const rtuSchema = z.strictObject({
  /** Serial device, e.g. /dev/ttyUSB0 or /dev/serial/by-id/… */
  path: z.string().min(1),
  baudRate: z.union(BAUD_RATES.map((b) => z.literal(b)) as unknown as [z.ZodLiteral<number>, z.ZodLiteral<number>]).default(9600),
  parity: z.enum(['none', 'even', 'odd']).default('none'),
  dataBits: z.union([z.literal(7), z.literal(8)]).default(8),
  stopBits: z.union([z.literal(1), z.literal(2)]).default(1),
  /** First delay before reopening a port that disappeared (doubles up to 10×). */
  reopenMs: z.number().int().min(50).max(60_000).default(1000),
});

const tcpSchema = z.strictObject({
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535).default(502),
  /** Outstanding transactions on the connection; >1 only for devices that pipeline. */
  maxInFlight: z.number().int().min(1).max(16).default(1),
  connectTimeoutMs: z.number().int().min(100).max(60_000).default(3000),
  reconnectMs: z.number().int().min(50).max(300_000).default(2000),
});

const deviceSchema = z
  .strictObject({
    name: z.string().regex(NAME, 'device names are lower-case [a-z0-9_-]'),
    /** Unit id (slave address): 1–247 on RTU (0 is broadcast, §2.2); TCP gateways may use 0–255. */
    unit: z.number().int().min(0).max(255).default(1),
    /** Template model id from adapters/modbus/devices (e.g. eastron-sdm630), or `sunspec` for discovery. */
    template: z.string().optional(),
    /** Inline register map (same fields as a template point); added to the template's points. */
    registers: z.array(z.record(z.string(), z.unknown())).optional(),
    /** Defaults for inline registers. */
    defaults: z
      .strictObject({
        function: z.enum(['coil', 'discrete', 'holding', 'input']).optional(),
        type: z.enum(REGISTER_TYPES).optional(),
        wordOrder: z.enum(['ABCD', 'CDAB', 'BADC', 'DCBA']).optional(),
      })
      .optional(),
    /** Datapoint id prefix; default `<adapter id>.<device name>`. */
    prefix: z.string().regex(PREFIX).optional(),
    interval: z.number().int().min(50).max(86_400_000).default(5000),
    timeoutMs: z.number().int().min(10).max(60_000).default(1000),
    /** Per-device read limit (registers); min(125, template maxRegisters, this). */
    maxRegisters: z.number().int().min(1).max(125).optional(),
    maxGap: z.number().int().min(0).max(124).optional(),
    intervals: z.record(z.string(), z.number().int().min(50).max(86_400_000)).optional(),
    only: z.array(z.string()).min(1).optional(),
    backoff: z
      .strictObject({ initialMs: z.number().int().min(10).default(1000), maxMs: z.number().int().min(10).default(60_000) })
      .default({ initialMs: 1000, maxMs: 60_000 }),
  })
  .refine((d) => d.template !== undefined || (d.registers?.length ?? 0) > 0, 'a device needs a "template" or inline "registers"');

const busSchema = z
  .strictObject({
    name: z.string().regex(NAME),
    rtu: rtuSchema.optional(),
    tcp: tcpSchema.optional(),
    devices: z.array(deviceSchema).min(1),
  })
  .refine((b) => (b.rtu ? 1 : 0) + (b.tcp ? 1 : 0) === 1, 'a bus has exactly one of "rtu" or "tcp"');

export const modbusSchema = z.strictObject({
  buses: z.array(busSchema).min(1),
  /** Extra directory of device templates (*.yaml) besides the built-in ones. */
  templatesDir: z.string().optional(),
});
export type ModbusOptions = z.output<typeof modbusSchema>;

/** What a bus passes to `ctx.ports.acquire`: lines shared by several adapters must agree on it. */
function rtuSettings(rtu: z.output<typeof rtuSchema>): Record<string, unknown> {
  return { kind: 'modbus-rtu', baudRate: rtu.baudRate, parity: rtu.parity, dataBits: rtu.dataBits, stopBits: rtu.stopBits };
}

interface OpenBus {
  name: string;
  bus: ModbusBus;
  link: RtuLine | TcpLink;
  release: () => Promise<void>;
}

/** Builds each device's options from config and templates; configuration mistakes name their path. */
export function resolveDevices(
  adapterId: string,
  options: ModbusOptions,
  templates: Map<string, DeviceTemplate>,
  sunspec: SunSpecDefinitions,
): Array<DeviceOptions> {
  const out: DeviceOptions[] = [];
  const names = new Set<string>();
  const prefixes = new Set<string>();
  options.buses.forEach((b, bi) => {
    const units = new Set<number>();
    b.devices.forEach((d, di) => {
      const at = `buses[${bi}].devices[${di}]`;
      const bad = (msg: string): never => {
        throw new OutpostError('CONFIG_INVALID', `${at}: ${msg}`);
      };
      if (names.has(d.name)) bad(`device name "${d.name}" is used twice`);
      names.add(d.name);
      if (units.has(d.unit)) bad(`unit ${d.unit} is used twice on bus ${b.name}`);
      units.add(d.unit);
      if (b.rtu && (d.unit < 1 || d.unit > 247)) bad(`RTU unit ids are 1..247, not ${d.unit}`);
      const prefix = d.prefix ?? `${adapterId}.${d.name}`;
      if (prefixes.has(prefix)) bad(`datapoint prefix "${prefix}" is used twice`);
      prefixes.add(prefix);
      let points = [] as DeviceOptions['points'] & object;
      let maxRegisters = 125;
      let maxGap = 8;
      let isSunSpec = false;
      if (d.template === 'sunspec') {
        isSunSpec = true;
        maxRegisters = sunspec.maxRegisters;
        maxGap = sunspec.maxGap;
        if (d.registers) bad('SunSpec devices are discovered; inline "registers" are not supported with them');
      } else if (d.template) {
        const t = templates.get(d.template);
        if (!t) bad(`unknown template "${d.template}"; known: sunspec, ${[...templates.keys()].join(', ')}`);
        points = [...t!.points];
        maxRegisters = t!.maxRegisters;
        maxGap = t!.maxGap;
      }
      if (d.registers) {
        const inline = resolvePoints(d.registers, d.defaults ?? {}, `${at}.registers`);
        for (const p of inline) {
          if (points.some((q) => q.name === p.name)) bad(`inline register "${p.name}" repeats a template point`);
          points.push(p);
        }
      }
      out.push({
        name: d.name,
        bus: b.name,
        unit: d.unit,
        prefix,
        model: d.template ?? 'inline',
        interval: d.interval,
        timeoutMs: d.timeoutMs,
        maxRegisters: Math.min(125, maxRegisters, d.maxRegisters ?? 125),
        maxGap: d.maxGap ?? maxGap,
        backoff: { initialMs: d.backoff.initialMs, maxMs: Math.max(d.backoff.maxMs, d.backoff.initialMs) },
        points: isSunSpec ? undefined : points,
        sunspec: isSunSpec ? sunspec : undefined,
        intervals: d.intervals,
        only: d.only,
      });
    });
  });
  return out;
}

/**
 * What start would refuse: templates (built-in and `templatesDir`) that do not load, unknown
 * template names, inline registers, names and units used twice, `only`/`intervals` naming no point.
 */
function checkModbus(options: ModbusOptions, env: CheckEnv): CheckProblem[] {
  const problems: CheckProblem[] = [];
  const message = (err: unknown): string => (err as Error).message;
  let templates: Map<string, DeviceTemplate>;
  let sunspec: SunSpecDefinitions;
  try {
    templates = loadTemplates();
    sunspec = loadSunSpec();
  } catch (err) {
    return [{ path: '', message: `built-in device templates: ${message(err)}` }];
  }
  if (options.templatesDir) {
    try {
      for (const [k, v] of loadTemplates(resolve(env.cwd, options.templatesDir))) templates.set(k, v);
    } catch (err) {
      const system = (err as NodeJS.ErrnoException).syscall !== undefined;
      problems.push({ path: 'templatesDir', message: system ? `cannot read ${options.templatesDir}: ${(err as NodeJS.ErrnoException).code}` : message(err) });
    }
  }
  options.buses.forEach((b, bi) => {
    b.devices.forEach((d, di) => {
      if (d.template && d.template !== 'sunspec' && !templates.has(d.template)) {
        problems.push({
          path: `buses.${bi}.devices.${di}.template`,
          message: `unknown template "${d.template}"; known: sunspec, ${[...templates.keys()].join(', ')}`,
        });
      }
    });
  });
  if (problems.length > 0) return problems;
  let devices: DeviceOptions[];
  try {
    devices = resolveDevices(env.id, options, templates, sunspec);
  } catch (err) {
    // resolveDevices names the device as `buses[i].devices[j]`: the same path, dotted.
    const m = /^buses\[(\d+)\]\.devices\[(\d+)\][.:]? ?(.*)$/s.exec(message(err));
    return [m ? { path: `buses.${m[1]}.devices.${m[2]}`, message: m[3]! } : { path: 'buses', message: message(err) }];
  }
  let i = 0;
  options.buses.forEach((b, bi) => {
    b.devices.forEach((d, di) => {
      const points = devices[i++]!.points;
      if (!points) return; // SunSpec: the points are discovered at start
      const missing = (d.only ?? []).filter((n) => !points.some((p) => p.name === n));
      if (missing.length) problems.push({ path: `buses.${bi}.devices.${di}.only`, message: `names unknown point(s) ${missing.join(', ')}` });
      const chosen = d.only ? points.filter((p) => d.only!.includes(p.name)) : points;
      for (const name of Object.keys(d.intervals ?? {})) {
        if (!chosen.some((p) => p.name === name))
          problems.push({ path: `buses.${bi}.devices.${di}.intervals.${name}`, message: `names unknown point ${name}` });
      }
    });
  });
  return problems;
}

/**
 * Modbus RTU and TCP meters and inverters: template-driven register maps, coalesced
 * polling with per-point intervals, per-device fault isolation and backoff, verified
 * writes to holding registers and coils.
 */
export default defineAdapter({
  type: 'modbus',
  description: 'Modbus RTU/TCP devices (energy meters, inverters) from YAML device templates',
  statusSchema: modbusStatusSchema,
  schema: modbusSchema,
  check(options, env) {
    return checkModbus(options, env);
  },
  ports(options) {
    return options.buses.flatMap((b, i) => (b.rtu ? [{ path: `buses.${i}.rtu.path`, device: b.rtu.path, settings: rtuSettings(b.rtu) }] : []));
  },
  create(options, instance) {
    const buses: OpenBus[] = [];
    const devices: DevicePoller[] = [];
    let statusTimer: NodeJS.Timeout | undefined;

    return {
      async start(ctx: AdapterContext) {
        const templates = loadTemplates();
        if (options.templatesDir) for (const [k, v] of loadTemplates(options.templatesDir)) templates.set(k, v);
        const sunspec = loadSunSpec();
        const resolved = resolveDevices(instance.id, options, templates, sunspec);

        for (const b of options.buses) {
          if (b.rtu) {
            const rtu = b.rtu;
            const settings = { baudRate: rtu.baudRate, parity: rtu.parity, dataBits: rtu.dataBits, stopBits: rtu.stopBits };
            // Shared by every adapter instance that talks to this RS-485 line, so requests never collide on the wire.
            const lease: PortLease<{ line: RtuLine; bus: ModbusBus }> = await ctx.ports.acquire(
              rtu.path,
              rtuSettings(rtu),
              async () => {
                const line = new RtuLine({ path: rtu.path, ...settings }, { reopenMs: rtu.reopenMs, log: ctx.log });
                await line.start();
                return { line, bus: new ModbusBus(line) };
              },
              async (r) => {
                r.bus.close();
                await r.line.close();
              },
            );
            buses.push({ name: b.name, bus: lease.resource.bus, link: lease.resource.line, release: lease.release });
          } else {
            const link = new TcpLink(b.tcp!, ctx.log);
            const bus = new ModbusBus(link);
            buses.push({
              name: b.name,
              bus,
              link,
              release: async () => {
                bus.close();
                await link.close();
              },
            });
          }
        }

        const publishStatus = (): void => {
          const info: ModbusStatusInfo['devices'] = {};
          const failing: string[] = [];
          for (const d of devices) {
            info[d.options.name] = d.status;
            if (d.status.state === 'failing') failing.push(`${d.options.name} (${d.status.lastError})`);
          }
          const withBad = devices.filter((d) => d.status.badPoints?.length).map((d) => `${d.options.name}: ${d.status.badPoints!.join(', ')}`);
          const busInfo: ModbusStatusInfo['buses'] = Object.fromEntries(
            buses.map((b) => [b.name, { link: b.link.name, error: b.link.error ?? null, transactions: b.bus.transactions }]),
          );
          const message = failing.length
            ? `${failing.length} of ${devices.length} devices failing: ${failing.join('; ')}`
            : withBad.length
              ? `all ${devices.length} devices answering; unreadable points: ${withBad.join('; ')}`
              : `all ${devices.length} devices answering`;
          ctx.setStatus({ degraded: failing.length > 0 || withBad.length > 0, message, info: { devices: info, buses: busInfo } satisfies ModbusStatusInfo });
        };

        for (const d of resolved) {
          const open = buses.find((b) => b.name === d.bus)!;
          const poller = new DevicePoller(ctx, open.bus, d, publishStatus);
          devices.push(poller);
        }
        try {
          for (const poller of devices) await poller.start();
        } catch (err) {
          // The host may not call stop() after a failed start: give the shared ports back here.
          await Promise.all(devices.splice(0).map((d) => d.stop()));
          await Promise.all(buses.splice(0).map((b) => b.release()));
          throw err;
        }
        publishStatus();
        // Counters (requests, errors) move all the time; refresh them slowly rather than on every poll.
        statusTimer = setInterval(publishStatus, 30_000);
        statusTimer.unref();
      },

      async stop() {
        if (statusTimer) clearInterval(statusTimer);
        await Promise.all(devices.splice(0).map((d) => d.stop()));
        await Promise.all(buses.splice(0).map((b) => b.release()));
      },
    };
  },
});
