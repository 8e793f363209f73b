import { join } from 'node:path';
import { defineAdapter, type AdapterContext } from '../../runtime/adapter.js';
import { OutpostError } from '../../core/errors.js';
import './errors.js';
import { CentralSystem } from './central.js';
import { loadChargerProfiles } from './chargers.js';
import { ocppOptionsSchema, remoteStartIdTagIssue } from './config.js';
import { mountRoutes } from './routes.js';
import { OcppServer } from './server.js';
import { SessionStore } from './sessions.js';
import { ocppStatusSchema } from './status-schema.js';

/**
 * OCPP 1.6-J central system for EV chargers on the gateway's HTTP server, with durable
 * sessions, a local authorization list and site load management, all working offline.
 */
export default defineAdapter({
  type: 'ocpp',
  description: 'OCPP 1.6-J central system: EV chargers, charging sessions, site load management',
  statusSchema: ocppStatusSchema,
  schema: ocppOptionsSchema,
  check(options) {
    let profiles: ReadonlyMap<string, unknown>;
    try {
      profiles = loadChargerProfiles();
    } catch (err) {
      return [{ path: '', message: `charger profiles: ${(err as Error).message}` }];
    }
    const remoteStart = remoteStartIdTagIssue(options);
    return [
      ...options.chargers.flatMap((c, i) =>
        c.profile && !profiles.has(c.profile)
          ? [{ path: `chargers.${i}.profile`, message: `charger "${c.id}": unknown profile "${c.profile}" (known: ${[...profiles.keys()].join(', ')})` }]
          : [],
      ),
      ...(remoteStart ? [{ path: 'remoteStartIdTag', message: remoteStart }] : []),
    ];
  },
  create(options) {
    let server: OcppServer | undefined;
    let sessions: SessionStore | undefined;
    let central: CentralSystem | undefined;
    let staleTimer: NodeJS.Timeout | undefined;
    let tickTimer: NodeJS.Timeout | undefined;
    let unsubscribe: (() => Promise<void>) | undefined;

    return {
      async start(ctx: AdapterContext) {
        if (options.busPrefix !== undefined && options.busPrefix !== ctx.topics.prefix) {
          ctx.log.warn({ busPrefix: options.busPrefix, prefix: ctx.topics.prefix }, 'busPrefix is ignored: the site meter topic follows broker.prefix');
        }
        const profiles = loadChargerProfiles();
        for (const c of options.chargers) {
          if (c.profile && !profiles.has(c.profile)) {
            throw new OutpostError('CONFIG_INVALID', `charger "${c.id}": unknown profile "${c.profile}" (known: ${[...profiles.keys()].join(', ')})`);
          }
        }
        const remoteStart = remoteStartIdTagIssue(options);
        if (remoteStart) throw new OutpostError('CONFIG_INVALID', remoteStart);
        // Sessions are priced with the site tariff as it is when their readings arrive (session-cost.ts).
        sessions = new SessionStore(join(ctx.dataDir, 'sessions'), options.maxSamplesPerSession, (t) => {
          const tariff = ctx.services.get('tariff', 'site');
          const price = tariff?.priceAt(t, 'import');
          return tariff && price !== undefined ? { price, currency: tariff.currency } : undefined;
        });
        await sessions.openStore();
        central = new CentralSystem(ctx, options, profiles, sessions);
        // Sessions that were running when the gateway stopped go on: their chargers are still charging.
        for (const s of sessions.openSessions()) central.chargerState(s.charger);

        const lm = central.loadManager;
        const meter = options.loadManagement?.meter;
        if (lm && meter) {
          const last = ctx.store.latest(meter.datapoint);
          // Stored before a restart: aged from its own time, but never from the future (a fast meter clock).
          if (last && typeof last.v === 'number') lm.meterReading(last.v, Math.min(last.t, ctx.clock.now()));
          const c = central;
          unsubscribe = await ctx.bus.subscribe(ctx.topics.value(meter.datapoint), (_topic, payload) => {
            try {
              const msg = JSON.parse(payload.toString('utf8')) as { v: unknown; t: unknown; q?: unknown };
              if (typeof msg.t !== 'number') throw new Error('no "t"');
              if (msg.v === null || msg.q === 'bad' || msg.q === 'stale') lm.meterReading(null);
              else if (typeof msg.v === 'number' && Number.isFinite(msg.v)) lm.meterReading(msg.v);
              else throw new Error('"v" is not a number');
            } catch (err) {
              c.warnOnce('meter-payload', { datapoint: meter.datapoint, reason: (err as Error).message }, 'site meter value ignored');
            }
          });
          // The meter can go quiet without telling us: check its age, re-plan when it turns stale.
          let state = lm.meterState();
          staleTimer = setInterval(
            () => {
              const now = lm.meterState();
              if (now !== state) {
                const message = now === 'stale' ? 'site meter stale: charging falls back to the safe limit' : 'site meter back';
                ctx.log.warn({ datapoint: meter.datapoint, state: now }, message);
                c.recordEvent({
                  kind: now === 'stale' ? 'meter.stale' : 'meter.fresh',
                  severity: now === 'stale' ? 'warning' : 'info',
                  message: `${message} (${meter.datapoint})`,
                  data: { datapoint: meter.datapoint, staleAfterMs: meter.staleAfterMs },
                });
                lm.replan(`site meter ${now}`);
              }
              state = now;
            },
            Math.min(5000, Math.max(250, meter.staleAfterMs / 4)),
          );
          staleTimer.unref();
        }

        // Increases and resumes wait for time to pass (cars following, hold times): look again every second.
        if (lm) {
          tickTimer = setInterval(() => lm.tick(), 1000);
          tickTimer.unref();
        }
        server = new OcppServer(ctx, central);
        ctx.http.upgrade(options.path, server.handleUpgrade);
        mountRoutes(ctx.http.router, central);
        lm?.replan('adapter started');
        central.reportStatus();
      },
      async stop() {
        if (staleTimer) clearInterval(staleTimer);
        staleTimer = undefined;
        if (tickTimer) clearInterval(tickTimer);
        tickTimer = undefined;
        await unsubscribe?.();
        unsubscribe = undefined;
        await server?.close();
        server = undefined;
        await central?.loadManager?.idle();
        central?.stop();
        central = undefined;
        await sessions?.close();
        sessions = undefined;
      },
    };
  },
});
