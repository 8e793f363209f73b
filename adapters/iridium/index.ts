import { z } from 'zod';
import { SerialPort, SerialPortMock } from 'serialport';
import { defineAdapter, type AdapterContext } from '../../runtime/adapter.js';
import { OutpostError, toOutpostError } from '../../core/errors.js';
import './errors.js';
import { AtTransport, serialPortIo } from './at-transport.js';
import { CreditBudget, DEFAULT_MT_CREDITS_PER_DAY, type Priority } from './budget.js';
import { creditsFor, MAX_MO_BYTES, MoCodec, type Reading } from './codec.js';
import { IridiumModem } from './modem.js';
import { MtVerifier, type AcceptedMt, type MtCommand } from './mt.js';
import { SbdLink, type LinkState, type MtHandler } from './session.js';
import { encodeMoAck, moKind } from './mo-ack.js';
import type { SatelliteModem, SatelliteMt } from '../../runtime/sync/satellite.js';
import { IridiumSimulator, mockDeviceIo } from './simulator.js';
import { iridiumStatusSchema, type IridiumStatusInfo } from './status-schema.js';
import { MoSeq } from './mo-seq.js';
import { ForwardQueue } from './mo-queue.js';
import { startForwarding } from './forwarding.js';

const datapointSchema = z.strictObject({
  id: z.string().regex(/^[a-z0-9_.-]{1,128}$/),
  /** Decimal places kept on the wire. */
  decimals: z.number().int().min(0).max(9).default(0),
  type: z.enum(['number', 'boolean']).default('number'),
  /** Forward this datapoint's readings over the satellite (stand-alone mode). */
  forward: z.boolean().default(true),
  /** A change to a truthy value is sent at once, as an alarm. */
  alarm: z.boolean().default(false),
});

const schema = z.strictObject({
  /** Serial device of the modem, e.g. /dev/ttyUSB0. */
  port: z.string().min(1),
  baudRate: z.number().int().default(19200),
  /** Turn echo off with ATE0 (the driver works either way). */
  echoOff: z.boolean().default(true),
  ringAlerts: z.boolean().default(true),
  /**
   * No longer used: the topics come from the gateway (`broker.prefix`, `ctx.topics`). Still
   * accepted so existing configs load; a value that differs from `broker.prefix` is warned about.
   */
  topicPrefix: z.string().optional(),
  /**
   * Stand-alone forwarding of the table's datapoints (those with `forward: true`). Set it
   * false when the modem is the sync service's fallback link (`sync.links[].type: iridium`):
   * the sync service then decides what goes out, and nothing is paid for twice.
   */
  forward: z.boolean().default(true),
  /** The codec table: ORDER IS THE WIRE CONTRACT with the central side; append only. */
  datapoints: z.array(datapointSchema).max(1000).default([]),
  timeResolutionMs: z.number().int().min(1).max(3_600_000).default(1000),
  /** Stand-alone forwarding: pack buffered readings into one message this often. */
  sendIntervalMs: z.number().int().min(1000).default(3_600_000),
  /** Readings buffered for forwarding; the oldest are dropped beyond it. */
  maxBufferedReadings: z.number().int().min(10).max(100_000).default(5000),
  /** Poll +CSQ this often for the signal datapoint (free; 0 = only around sessions). */
  signalPollMs: z.number().int().min(0).default(300_000),
  /** Periodic mailbox check for MT messages (0 = only on ring alerts and with MO traffic). */
  mailboxCheckMs: z.number().int().min(0).default(0),
  budget: z
    .strictObject({
      dailyCredits: z.number().int().min(1).default(50),
      monthlyCredits: z.number().int().min(1).optional(),
      alarmReserve: z.number().int().min(0).default(5),
      historyShare: z.number().min(0).max(1).default(0.8),
      /** Credits a day for sessions only to fetch MT (ring alerts, mailbox checks); never the alarm reserve. */
      mtCreditsPerDay: z.number().int().min(0).default(DEFAULT_MT_CREDITS_PER_DAY),
    })
    .prefault({}),
  mt: z
    .strictObject({
      /** Shared key, hex (at least 32 hex digits = 16 bytes). Never logged. */
      secret: z.string().regex(/^([0-9a-fA-F]{2}){16,64}$/, 'secret must be 16..64 bytes as hex'),
      /** Names of commands an MT message may carry (index = wire code). */
      commands: z.array(z.string().min(1)).default(['mailbox_check', 'send_now']),
    })
    .optional(),
  /**
   * No hardware: a simulated modem (adapters/iridium/simulator.ts) on the serialport mock
   * binding at `port`, in this process. For the demo and trials; costs nothing.
   */
  simulator: z
    .strictObject({
      signal: z.number().int().min(0).max(5).default(4),
      /** How long a simulated +SBDIX session takes (real ones take ~10-60 s). */
      sessionDelayMs: z.number().int().min(0).max(120_000).default(3000),
    })
    .optional(),
  timing: z
    .strictObject({
      atMs: z.number().int().min(10).default(5_000),
      startupMs: z.number().int().min(10).default(60_000),
      startupProbeMs: z.number().int().min(10).default(1_000),
      sessionMs: z.number().int().min(10).default(120_000),
      sbdwbMs: z.number().int().min(10).default(65_000),
      sbdrbOkMs: z.number().int().min(1).default(1_000),
      minSignal: z.number().int().min(0).max(5).default(2),
      signalRetryMs: z.number().int().min(1).default(30_000),
      backoffInitialMs: z.number().int().min(1).default(20_000),
      backoffMaxMs: z.number().int().min(1).default(900_000),
      registrationWaitMs: z.number().int().min(1).default(180_000),
      accountRetryMs: z.number().int().min(1).default(3_600_000),
      budgetRetryMs: z.number().int().min(1).default(600_000),
    })
    .prefault({}),
});

export type IridiumOptions = z.output<typeof schema>;

/** What the sync link (and anything else in-process) uses to talk over the satellite. */
export interface IridiumLinkApi {
  /** Queue raw MO bytes (1..340). */
  send(bytes: Uint8Array, priority?: Priority): Promise<{ momsn: number; credits: number }>;
  /** Pack readings with the compact codec into as few messages as possible and queue them. */
  sendReadings(readings: readonly Reading[], priority?: Priority): Promise<Array<{ momsn: number; credits: number; seq: number }>>;
  /** Authenticated MT commands (after replay/forgery checks). */
  onMt(handler: (commands: MtCommand[], info: { counter: number; mtmsn: number }) => void | Promise<void>): () => void;
  /** Raw MT bytes, before authentication (for links with their own format). */
  onRawMt(handler: MtHandler): () => void;
  readonly codec: MoCodec;
  readonly state: LinkState;
}

declare module '../../runtime/services.js' {
  interface ServiceTypes {
    /** A running Iridium adapter's link API, by adapter id (`ctx.services.get('iridium-link', id)`). */
    'iridium-link': IridiumLinkApi;
  }
}

/**
 * Iridium SBD modem (RockBLOCK 9603/9602) on a serial port: drives the modem, sends
 * readings in a compact binary form within a credit budget, and turns authenticated MT
 * messages into setpoints on the bus.
 */
export default defineAdapter({
  type: 'iridium',
  description: 'Iridium SBD satellite modem (RockBLOCK 9603/9602): metered uplink and authenticated downlink',
  statusSchema: iridiumStatusSchema,
  schema,
  ports(options) {
    return [{ path: 'port', device: options.port, settings: { baudRate: options.baudRate } }];
  },
  check(options) {
    try {
      new MoCodec({ datapoints: options.datapoints, timeResolutionMs: options.timeResolutionMs });
      return [];
    } catch (err) {
      return [{ path: 'datapoints', message: (err as Error).message }];
    }
  },
  create(options, { id }) {
    let link: SbdLink | undefined;
    let transport: AtTransport | undefined;
    let release: (() => Promise<void>) | undefined;
    const timers: NodeJS.Timeout[] = [];
    /** What this run provides through `ctx.services` (the host withdraws them too when it stops). */
    const withdraw: Array<() => void> = [];
    let forwarding: { flush(): void; stop(): Promise<void> } | undefined;

    return {
      async start(ctx: AdapterContext) {
        if (options.topicPrefix !== undefined && options.topicPrefix !== ctx.topics.prefix) {
          ctx.log.warn({ topicPrefix: options.topicPrefix, prefix: ctx.topics.prefix }, 'topicPrefix is ignored: the topics follow broker.prefix');
        }
        const codec = new MoCodec({ datapoints: options.datapoints, timeResolutionMs: options.timeResolutionMs });
        const dp = {
          signal: `${id}.signal`,
          state: `${id}.link_state`,
          today: `${id}.credits_today`,
          month: `${id}.credits_month`,
          queue: `${id}.queue`,
          refused: `${id}.mt_refused`,
          moStatus: `${id}.last_mo_status`,
          rings: `${id}.ring_alerts`,
          ringsDeferred: `${id}.rings_deferred`,
          mtToday: `${id}.mt_credits_today`,
        };
        await ctx.datapoints.register([
          { id: dp.signal, type: 'number', unit: 'bars', min: 0, max: 5, description: 'Iridium signal quality (+CSQ, 0..5)' },
          { id: dp.state, type: 'string', description: 'Iridium link state (idle, session, backoff, waiting, no_signal, budget, account_error, down)' },
          { id: dp.today, type: 'number', unit: 'credits', description: 'Iridium credits (50-byte units) used today' },
          { id: dp.month, type: 'number', unit: 'credits', description: 'Iridium credits used this month' },
          { id: dp.queue, type: 'number', description: 'MO messages waiting to be sent' },
          { id: dp.refused, type: 'number', description: 'MT messages refused (forged, replayed or malformed) since start' },
          { id: dp.moStatus, type: 'number', description: 'MO status of the last SBD session (+SBDIX)' },
          { id: dp.rings, type: 'number', description: 'SBDRING alerts since start (anyone who knows the IMEI can make the modem ring)' },
          { id: dp.ringsDeferred, type: 'number', description: 'Ring alerts that came while the MT share was spent: answered by the next MO session' },
          { id: dp.mtToday, type: 'number', unit: 'credits', description: 'Iridium credits spent on MT today (budget.mtCreditsPerDay)' },
        ]);
        const publish = (point: string, v: number | string): void => {
          ctx.bus
            .publishValue(point, v)
            .catch((err: unknown) => ctx.log.warn({ id: point, err: toOutpostError(err).message }, 'Iridium status value not stored'));
        };

        const budget = await CreditBudget.open(ctx.dataDir, options.budget, ctx.clock, ctx.gateway.timezone);
        const verifier = options.mt
          ? await MtVerifier.open(ctx.dataDir, {
              key: Buffer.from(options.mt.secret, 'hex'),
              context: ctx.gateway.id,
              datapoints: options.datapoints,
              commands: options.mt.commands,
            })
          : undefined;

        const sim = options.simulator;
        let simulatedModem: IridiumSimulator | undefined;
        const lease = await ctx.ports.acquire(
          options.port,
          { baudRate: options.baudRate },
          () =>
            new Promise<SerialPort | SerialPortMock>((resolve, reject) => {
              if (sim) SerialPortMock.binding.createPort(options.port, { echo: false, record: false });
              const port = sim
                ? new SerialPortMock({ path: options.port, baudRate: options.baudRate, autoOpen: false })
                : new SerialPort({ path: options.port, baudRate: options.baudRate, autoOpen: false });
              port.open((err) => {
                if (err) return reject(new OutpostError('ADAPTER_START_FAILED', `cannot open ${options.port}: ${err.message}`, { cause: err }));
                // The simulated modem sits on the device end of the mock port (it needs the open binding).
                if (sim)
                  simulatedModem = new IridiumSimulator(mockDeviceIo(port), {
                    echo: true,
                    signal: sim.signal,
                    sessionDelayMs: sim.sessionDelayMs,
                    historyLimit: 20,
                  });
                resolve(port);
              });
            }),
          (port) =>
            new Promise<void>((resolve) => {
              simulatedModem?.close();
              simulatedModem = undefined;
              if (port.isOpen) port.close(() => resolve());
              else resolve();
            }),
        );
        release = lease.release;
        transport = new AtTransport(serialPortIo(lease.resource));
        const t = options.timing;
        const modem = new IridiumModem(transport, {
          echoOff: options.echoOff,
          ringAlerts: options.ringAlerts,
          signal: ctx.signal,
          timeouts: {
            atMs: t.atMs,
            startupMs: t.startupMs,
            startupProbeMs: t.startupProbeMs,
            sessionMs: t.sessionMs,
            sbdwbMs: t.sbdwbMs,
            sbdrbOkMs: t.sbdrbOkMs,
          },
        });
        const info = await modem.init();
        ctx.log.info({ imei: info.imei, model: info.model, firmware: info.firmware[0] }, 'Iridium modem ready');

        link = new SbdLink(modem, budget, ctx.clock, ctx.log, t);
        const l = link;
        // The status (and its numeric fields as outpost_adapter_info gauges) follows the
        // link state, the spend and the signal, not only state changes.
        let status: { state: LinkState; detail?: string } = { state: l.state };
        let signal: number | undefined;
        const refreshStatus = (): void => {
          const { state, detail } = status;
          const degraded = state === 'account_error' || state === 'down' || state === 'no_signal' || state === 'budget';
          // A ring flood (MT queued at the gateway by whoever knows the IMEI) is worth a look even while the link is fine.
          const flood = l.ringsDeferred > 0 ? `; ${l.ringsDeferred} ring alert(s) deferred: MT share of the budget spent` : '';
          ctx.setStatus({
            degraded,
            message: `${detail ?? state}${flood}`,
            info: {
              imei: info.imei,
              state,
              queued: l.queued,
              creditsToday: budget.today,
              creditsMonth: budget.month,
              creditsMtToday: budget.mtToday,
              ringAlerts: l.rings,
              ringsDeferred: l.ringsDeferred,
              ...(signal === undefined ? {} : { signal }),
            } satisfies IridiumStatusInfo,
          });
        };
        l.on('state', (state: LinkState, detail?: string) => {
          publish(dp.state, state);
          status = detail === undefined ? { state } : { state, detail };
          refreshStatus();
        });
        l.on('signal', (bars: number) => {
          publish(dp.signal, bars);
          signal = bars;
          refreshStatus();
        });
        l.on('credits', (today: number, month: number, mt: number) => {
          publish(dp.today, today);
          publish(dp.month, month);
          publish(dp.mtToday, mt);
          refreshStatus();
        });
        l.on('rings', (rings: number, deferred: number) => {
          publish(dp.rings, rings);
          publish(dp.ringsDeferred, deferred);
          refreshStatus();
        });
        l.on('queue', (n: number) => {
          publish(dp.queue, n);
          refreshStatus();
        });
        l.on('session', (r: { moStatus: number }) => publish(dp.moStatus, r.moStatus));
        l.on('alert', (err: OutpostError) => ctx.log.error({ code: err.code, reason: err.message }, 'Iridium link needs attention'));
        l.on('mt-error', (err: OutpostError, mtmsn: number) => ctx.log.warn({ code: err.code, reason: err.message, mtmsn }, 'MT handler failed'));
        l.on('error', (err: unknown) => ctx.fail(err));
        publish(dp.today, budget.today);
        publish(dp.month, budget.month);
        publish(dp.mtToday, budget.mtToday);
        publish(dp.rings, 0);
        publish(dp.ringsDeferred, 0);

        // ---- MT: authenticate, then setpoints (locally, or through the sync downlink) ----
        let refused = 0;
        publish(dp.refused, refused);
        const mtHandlers = new Set<(c: MtCommand[], i: { counter: number; mtmsn: number }) => void | Promise<void>>();
        /** Set while a sync link takes the MT commands (it validates, applies and acknowledges them). */
        let commandSink: ((mt: SatelliteMt) => void) | undefined;
        l.onMt(async (bytes, mtInfo) => {
          if (!verifier) {
            refused++;
            publish(dp.refused, refused);
            ctx.log.warn({ mtmsn: mtInfo.mtmsn, bytes: bytes.length }, 'MT message refused: no mt.secret configured');
            return;
          }
          let accepted: AcceptedMt;
          try {
            accepted = await verifier.accept(bytes);
          } catch (err) {
            const e = toOutpostError(err);
            if (e.code !== 'IRIDIUM_MT_REFUSED') throw e;
            refused++;
            publish(dp.refused, refused);
            ctx.log.warn({ mtmsn: mtInfo.mtmsn, reason: (e.details as { reason: string }).reason, detail: e.message }, 'MT message refused');
            return;
          }
          ctx.log.info(
            { mtmsn: mtInfo.mtmsn, counter: accepted.counter, commands: accepted.commands.length, via: commandSink ? 'sync' : 'adapter' },
            'MT message accepted',
          );
          for (const c of accepted.commands) {
            if (c.kind === 'command') {
              if (c.name === 'mailbox_check') l.mailboxCheck();
              else if (c.name === 'send_now') flush();
            } else if (c.kind === 'schedule') {
              // Schedules live in the sync service (runtime/sync/schedules.ts); stand-alone there is none.
              if (!commandSink)
                ctx.log.warn({ id: c.id, entries: c.entries.length }, 'MT schedule refused: schedules need the sync service (a `type: iridium` sync link)');
            } else if (!commandSink) {
              const body: { v: number | boolean; expires?: number } = { v: c.v };
              if (c.expiresInS !== undefined) body.expires = ctx.clock.now() + c.expiresInS * 1000;
              // Same validation and routing as a local write; a refusal is logged, never retried.
              await ctx.setpoint(c.id, body).then(
                (r) => ctx.log.info({ id: c.id, v: r.v }, 'MT setpoint applied'),
                (err: unknown) => {
                  const e = toOutpostError(err);
                  ctx.log.warn({ id: c.id, code: e.code, reason: e.message }, 'MT setpoint refused');
                },
              );
            }
          }
          commandSink?.({ counter: accepted.counter, mtmsn: mtInfo.mtmsn, commands: accepted.commands });
          for (const h of mtHandlers) await h(accepted.commands, { counter: accepted.counter, mtmsn: mtInfo.mtmsn });
        });

        // ---- stand-alone forwarding of readings (forwarding.ts, mo-queue.ts) ----
        const moSeq = await MoSeq.open(ctx.dataDir);
        const queue = await ForwardQueue.open({
          dataDir: ctx.dataDir,
          codec,
          takeSeq: () => moSeq.take(),
          maxReadings: options.maxBufferedReadings,
          log: ctx.log,
        });
        l.setSource(queue);
        if (options.forward) {
          forwarding = await startForwarding(ctx, options, queue, () => l.notify());
        }
        const flush = (): void => forwarding?.flush();
        type Sent = { momsn: number; credits: number; seq: number };
        /** In-process users (service `iridium-link`): packs readings into messages of their own, in memory. */
        const sendReadings = async (readings: readonly Reading[], priority: Priority = 'history'): Promise<Sent[]> => {
          const messages: Array<{ bytes: Buffer; seq: number }> = [];
          let offset = 0;
          while (offset < readings.length) {
            const seq = await moSeq.take();
            const { bytes, count } = codec.packPrefix(readings.slice(offset, offset + 340 * 8), seq);
            offset += count;
            messages.push({ bytes, seq });
          }
          return Promise.all(messages.map((m) => l.send(m.bytes, priority).then((r) => ({ ...r, seq: m.seq }))));
        };
        const pollSignal = (): void => {
          l.pollSignal().then(
            (bars) => {
              signal = bars;
              refreshStatus();
            },
            (err: unknown) => ctx.log.debug({ code: toOutpostError(err).code }, 'signal poll failed'),
          );
        };
        pollSignal();
        if (options.signalPollMs > 0) {
          timers.push(
            setInterval(() => {
              pollSignal();
              // The spend counters roll over at local midnight / month start (budget.ts);
              // republish them so the datapoints drop back to 0 without waiting for a session.
              publish(dp.today, budget.today);
              publish(dp.month, budget.month);
              publish(dp.mtToday, budget.mtToday);
            }, options.signalPollMs),
          );
        }
        if (options.mailboxCheckMs > 0) timers.push(setInterval(() => l.mailboxCheck(), options.mailboxCheckMs));

        const linkApi: IridiumLinkApi = {
          send: (bytes, priority) => l.send(bytes, priority),
          sendReadings,
          onMt: (h) => {
            mtHandlers.add(h);
            return () => mtHandlers.delete(h);
          },
          onRawMt: (h) => l.onMt(h),
          codec,
          get state() {
            return l.state;
          },
        };
        withdraw.push(ctx.services.register('iridium-link', id, linkApi));

        // ---- the sync fallback link's view of this modem (runtime/sync/satellite.ts) ----
        const modemApi: SatelliteModem = {
          get state() {
            return l.state;
          },
          maxMessageBytes: MAX_MO_BYTES,
          forwarding: options.forward && options.datapoints.some((d) => d.forward),
          carries: (r) => codec.carries(r),
          // Codec version 2: every reading with its outbox sequence number, for the receiver's dedupe.
          pack: (readings, maxBytes) => codec.packPrefix(readings as readonly Reading[], moSeq.current, maxBytes, { outboxSeqs: true }),
          creditsFor,
          allows: (credits, priority) => budget.allows(credits, priority),
          sendPacked: async (bytes, priority) => {
            if (moKind(bytes) === 'readings') {
              // `pack` used the current message number: consume it durably before the message goes out.
              await moSeq.take();
            }
            const r = await l.send(bytes, priority);
            return { credits: r.credits };
          },
          encodeAck: (acks) => encodeMoAck(acks),
          // The forwarding queue's storage slot (mo-queue.ts): on disk, sent first, alarm class.
          reportStorage: (storage) => queue.setStorage(storage, ctx.clock.now()).finally(() => l.notify()),
          onState: (listener) => {
            l.on('state', listener);
            return () => void l.off('state', listener);
          },
          setCommandSink: (sink) => {
            commandSink = sink;
            return () => {
              if (commandSink === sink) commandSink = undefined;
            };
          },
        };
        withdraw.push(ctx.services.register('satellite-modem', id, modemApi));
        l.start();
      },
      async stop() {
        for (const undo of withdraw.splice(0)) undo();
        for (const timer of timers.splice(0)) clearInterval(timer);
        await forwarding?.stop();
        forwarding = undefined;
        await link?.stop();
        link = undefined;
        transport?.close();
        transport = undefined;
        await release?.();
        release = undefined;
      },
    };
  },
});
