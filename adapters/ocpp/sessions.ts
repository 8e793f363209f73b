import { Level } from 'level';
import { OutpostError } from '../../core/errors.js';
import '../../storage/errors.js'; // registers the STORAGE_* codes thrown here
import { priceReadings, sessionCost, startPricing, type CostAccumulator, type PriceAt, type SessionCost } from './session-cost.js';

/**
 * Durable charging sessions in a LevelDB of their own (`<dataDir>/sessions`). The gateway
 * assigns OCPP transaction ids (OCPP 1.6 §5.16 StartTransaction.conf) from a persisted counter,
 * so ids never repeat across restarts. Keys sort so every read is a range scan:
 *   `meta!txid`                  last assigned transaction id
 *   `s!<id>`                     session record (id = transaction id, zero-padded)
 *   `t!<start ms>!<id>`          index by start time
 *   `o!<id>`                     index of open (not yet stopped) sessions
 *   `m!<id>!<seq>`               raw meter values of the session, bounded per session
 */

export interface ChargingSession {
  id: number;
  charger: string;
  connectorId: number;
  idTag: string;
  /** idTagInfo.status given at start (Accepted, Blocked, …). */
  authorization: string;
  start: number;
  stop?: number;
  meterStartWh: number;
  meterStopWh?: number;
  /** Latest energy register seen during the session (Wh). */
  lastMeterWh?: number;
  energyKwh: number;
  stopReason?: string;
  stopIdTag?: string;
  reservationId?: number;
  /** Meter value records kept / dropped because the per-session bound was reached. */
  samples: number;
  samplesDropped: number;
  /** Running cost (session-cost.ts); internal, shown as `cost`, `currency`, `costBasis`. */
  pricing?: CostAccumulator;
}

/** A session as REST, the CSV and the completed-sessions datapoint show it: with its cost. */
export type SessionView = Omit<ChargingSession, 'pricing'> & SessionCost;

export interface MeterValueRecord {
  t: number;
  sampledValue: unknown[];
}

const pad = (n: number, width: number): string => String(Math.max(0, Math.trunc(n))).padStart(width, '0');
const idKey = (id: number): string => pad(id, 10);

export interface SessionQuery {
  from?: number;
  to?: number;
  charger?: string;
  limit?: number;
}

export class SessionStore {
  private readonly db: Level<string, unknown>;
  private lastTxId = 0;
  /** Serialises writes that read-modify-write (counter, session updates). */
  private chain: Promise<unknown> = Promise.resolve();
  private readonly open = new Map<number, ChargingSession>();

  constructor(
    path: string,
    private readonly maxSamplesPerSession = 5000,
    /** The site tariff's import price (absent: sessions have no cost). */
    private readonly priceAt: PriceAt = () => undefined,
  ) {
    this.db = new Level<string, unknown>(path, { valueEncoding: 'json' });
  }

  async openStore(): Promise<void> {
    try {
      await this.db.open();
    } catch (err) {
      throw new OutpostError('STORAGE_OPEN_FAILED', `charging sessions database: ${(err as Error).message}`, { cause: err });
    }
    this.lastTxId = ((await this.db.get('meta!txid')) as number | undefined) ?? 0;
    for await (const key of this.db.keys({ gte: 'o!', lt: 'o!~' })) {
      const session = (await this.db.get(`s!${key.slice(2)}`)) as ChargingSession | undefined;
      if (session) this.open.set(session.id, session);
    }
  }

  async close(): Promise<void> {
    await this.chain.catch(() => undefined);
    await this.db.close();
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  openSessions(): ChargingSession[] {
    return [...this.open.values()];
  }

  activeOn(charger: string, connectorId: number): ChargingSession | undefined {
    for (const s of this.open.values()) if (s.charger === charger && s.connectorId === connectorId) return s;
    return undefined;
  }

  getOpen(id: number): ChargingSession | undefined {
    return this.open.get(id);
  }

  /** Allocates the next transaction id and stores the session in one atomic batch. */
  start(input: Omit<ChargingSession, 'id' | 'energyKwh' | 'samples' | 'samplesDropped'>): Promise<ChargingSession> {
    return this.serial(async () => {
      const id = this.lastTxId + 1;
      const session: ChargingSession = { ...input, id, energyKwh: 0, samples: 0, samplesDropped: 0, pricing: startPricing(input.meterStartWh, input.start) };
      await this.db.batch([
        { type: 'put', key: 'meta!txid', value: id },
        { type: 'put', key: `s!${idKey(id)}`, value: session },
        { type: 'put', key: `t!${pad(session.start, 15)}!${idKey(id)}`, value: id },
        { type: 'put', key: `o!${idKey(id)}`, value: id },
      ]);
      this.lastTxId = id;
      this.open.set(id, session);
      return session;
    });
  }

  /** Closes a session; returns undefined for a transaction id this gateway never assigned. */
  stop(id: number, stop: { stop: number; meterStopWh: number; reason?: string; idTag?: string }): Promise<ChargingSession | undefined> {
    return this.serial(async () => {
      const session = this.open.get(id) ?? ((await this.db.get(`s!${idKey(id)}`)) as ChargingSession | undefined);
      if (!session) return undefined;
      if (session.stop !== undefined) return session; // a repeated StopTransaction (charger retry) changes nothing
      // The last interval (last reading → meterStop) is priced like the others; a session with
      // no reading at all is priced at its start (session-cost.ts).
      const pricing =
        session.pricing && session.pricing.intervals > 0
          ? priceReadings(session.pricing, [{ t: stop.stop, wh: stop.meterStopWh }], this.priceAt)
          : session.pricing;
      const closed: ChargingSession = {
        ...session,
        ...(pricing ? { pricing } : {}),
        stop: stop.stop,
        meterStopWh: stop.meterStopWh,
        lastMeterWh: stop.meterStopWh,
        energyKwh: Math.max(0, Math.round(stop.meterStopWh - session.meterStartWh)) / 1000,
        ...(stop.reason ? { stopReason: stop.reason } : {}),
        ...(stop.idTag ? { stopIdTag: stop.idTag } : {}),
      };
      await this.db.batch([
        { type: 'put', key: `s!${idKey(id)}`, value: closed },
        { type: 'del', key: `o!${idKey(id)}` },
      ]);
      this.open.delete(id);
      return closed;
    });
  }

  /**
   * Appends meter values to an open session and updates its running energy and cost (`energy`:
   * the energy register readings among them, Wh, by sample time).
   */
  addMeterValues(
    id: number,
    records: MeterValueRecord[],
    lastMeterWh: number | undefined,
    energy: ReadonlyArray<{ t: number; wh: number }> = [],
  ): Promise<ChargingSession | undefined> {
    return this.serial(async () => {
      const session = this.open.get(id);
      if (!session) return undefined;
      const ops: Array<{ type: 'put'; key: string; value: unknown }> = [];
      for (const record of records) {
        if (session.samples >= this.maxSamplesPerSession) {
          session.samplesDropped++;
          continue;
        }
        ops.push({ type: 'put', key: `m!${idKey(id)}!${pad(session.samples, 8)}`, value: record });
        session.samples++;
      }
      if (lastMeterWh !== undefined && lastMeterWh >= session.meterStartWh) {
        session.lastMeterWh = lastMeterWh;
        session.energyKwh = Math.round(lastMeterWh - session.meterStartWh) / 1000;
      }
      // Sessions stored before costs were kept start their pricing at their first readings.
      if (energy.length) session.pricing = priceReadings(session.pricing ?? startPricing(session.meterStartWh, session.start), energy, this.priceAt);
      ops.push({ type: 'put', key: `s!${idKey(id)}`, value: session });
      await this.db.batch(ops);
      return session;
    });
  }

  /** A session with its cost, without the internal running figures. */
  view(session: ChargingSession): SessionView {
    const { pricing: _pricing, ...rest } = session;
    return { ...rest, ...sessionCost(session, this.priceAt) };
  }

  async get(id: number): Promise<ChargingSession | undefined> {
    return (await this.db.get(`s!${idKey(id)}`)) as ChargingSession | undefined;
  }

  async meterValues(id: number, limit = 10_000): Promise<MeterValueRecord[]> {
    return (await this.db.values({ gte: `m!${idKey(id)}!`, lt: `m!${idKey(id)}!~`, limit }).all()) as MeterValueRecord[];
  }

  /** Sessions that started in [from, to), oldest first. */
  async query(q: SessionQuery = {}): Promise<ChargingSession[]> {
    const limit = Math.min(q.limit ?? 1000, 10_000);
    const out: ChargingSession[] = [];
    const gte = `t!${pad(q.from ?? 0, 15)}!`;
    const lt = q.to === undefined ? 't!~' : `t!${pad(q.to, 15)}!`;
    for await (const id of this.db.values({ gte, lt })) {
      const session = (await this.db.get(`s!${idKey(id as number)}`)) as ChargingSession | undefined;
      if (!session || (q.charger && session.charger !== q.charger)) continue;
      out.push(this.open.get(session.id) ?? session);
      if (out.length >= limit) break;
    }
    return out;
  }
}
