import { RPCClient } from 'ocpp-rpc';
import { CarFollower, type CarResponse } from './sim-car.js';
import { handleCentralSystemCalls } from './sim-handlers.js';
import type { InstalledProfile, QueuedCall, SimConnector, SimulatorOptions } from './sim-types.js';
import { pathToFileURL } from 'node:url';

export type { SimConnector, SimulatorOptions } from './sim-types.js';

/**
 * An OCPP 1.6-J charge point simulator (ocpp-rpc client): boots, reports connector status,
 * runs sessions whose car draws min(profile limit, car maximum) on its phases, integrates
 * energy, and sends MeterValues with energy, power, per-phase current and voltage, and SoC.
 * While disconnected it queues transaction messages (bounded) and sends them on reconnect,
 * like a real charger (OCPP 1.6 §3.16 transaction-related messages). Its answers to the central
 * system's calls are in sim-handlers.ts, its types in sim-types.ts.
 */
export class ChargePointSimulator {
  readonly connectors: SimConnector[];
  readonly configuration = new Map<string, string>([
    ['HeartbeatInterval', '300'],
    ['MeterValueSampleInterval', '10'],
  ]);
  /** Every SetChargingProfile received, for tests and the demo log. */
  readonly profiles: Array<{ connectorId: number; csChargingProfiles: Record<string, unknown> }> = [];
  readonly received: Array<{ action: string; params: unknown }> = [];
  private client: RPCClient | undefined;
  /** Not private: sim-handlers.ts restarts it on ChangeConfiguration. */
  timer: NodeJS.Timeout | undefined;
  private readonly queue: QueuedCall[] = [];
  /** Not private: sim-handlers.ts changes meterIntervalMs on ChangeConfiguration. */
  readonly opts: Required<Omit<SimulatorOptions, 'password' | 'car'>> & { password?: string; car?: CarResponse };
  bootStatus: string | undefined;
  /**
   * Charging profiles in force (OCPP 1.6 §3.13), bounded: one per id/purpose/stack level/connector.
   * Not private, like installProfile and recomputeLimits: sim-handlers.ts sets and clears them.
   */
  installed: InstalledProfile[] = [];
  /** Called after a charging profile changed a connector's limit. */
  onLimit: ((connectorId: number, limitA: number) => void) | undefined;

  constructor(options: SimulatorOptions) {
    this.opts = {
      connectors: 1,
      vendor: 'Outpost',
      model: 'SimCharger',
      phases: 3,
      maxCurrentA: 32,
      voltage: 230,
      meterIntervalMs: 0,
      batteryKwh: 60,
      timestampsWithoutOffset: false,
      callTimeoutMs: 10_000,
      maxQueued: 1000,
      ...options,
    };
    this.connectors = Array.from({ length: this.opts.connectors }, (_, i) => ({
      id: i + 1,
      status: 'Available',
      energyWh: 1_000_000 + i * 250_000,
      limitA: this.opts.maxCurrentA,
      carMaxA: 32,
      socPercent: 20,
      drawA: 0,
      available: true,
    }));
    // Read-only (OCPP 1.6 §9.1.21): what the central system bounds connector ids by.
    this.configuration.set('NumberOfConnectors', String(this.opts.connectors));
  }

  get online(): boolean {
    return this.client !== undefined && this.client.state === RPCClient.OPEN;
  }

  /** Connects; with `boot`, sends BootNotification and every connector's status (a cold start). */
  async connect(options: { boot?: boolean } = {}): Promise<void> {
    const client = new RPCClient({
      endpoint: this.opts.endpoint,
      identity: this.opts.identity,
      protocols: ['ocpp1.6'],
      strictMode: true,
      reconnect: false,
      callTimeoutMs: this.opts.callTimeoutMs,
      ...(this.opts.password !== undefined ? { password: this.opts.password } : {}),
      // ocpp-rpc's typings mark every option required although all have defaults.
    } as Partial<ConstructorParameters<typeof RPCClient>[0]> as ConstructorParameters<typeof RPCClient>[0]);
    handleCentralSystemCalls(this, client);
    await client.connect();
    this.client = client;
    client.once('close', () => {
      if (this.client === client) this.client = undefined;
    });
    if (options.boot ?? true) {
      const boot = (await client.call('BootNotification', {
        chargePointVendor: this.opts.vendor,
        chargePointModel: this.opts.model,
        firmwareVersion: '1.0.0',
      })) as { status: string };
      this.bootStatus = boot.status;
      await this.sendStatus(0, 'Available');
      for (const c of this.connectors) await this.sendStatus(c.id, c.status);
    }
    await this.flush();
    if (this.opts.meterIntervalMs > 0 && !this.timer) this.startMeterTimer(this.opts.meterIntervalMs);
  }

  /** Meter values every `ms` (MeterValueSampleInterval). Not private: called from sim-handlers.ts. */
  startMeterTimer(ms: number): void {
    if (this.timer) clearInterval(this.timer);
    this.opts.meterIntervalMs = ms;
    this.timer = setInterval(() => void this.tick(ms).catch(() => undefined), ms);
    this.timer.unref();
  }

  /** Milliseconds between automatic meter values (changed by the central system's ChangeConfiguration). */
  get meterIntervalMs(): number {
    return this.opts.meterIntervalMs;
  }

  /** Drops the connection (network loss): sessions go on, messages queue. */
  async disconnect(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await client?.close({ code: 1001, force: true });
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.disconnect();
  }

  connector(id: number): SimConnector {
    const c = this.connectors.find((k) => k.id === id);
    if (!c) throw new Error(`no connector ${id}`);
    return c;
  }

  /** Sends a call, or queues it while offline (transaction-related messages only). */
  async send(action: string, params: Record<string, unknown>, queueIfOffline = false): Promise<Record<string, unknown>> {
    if (this.client && this.online) return (await this.client.call(action, params)) as Record<string, unknown>;
    if (!queueIfOffline) throw new Error(`${this.opts.identity} is offline`);
    return new Promise((resolve, reject) => {
      if (this.queue.length >= this.opts.maxQueued) this.queue.shift()?.reject(new Error('dropped from the offline queue'));
      this.queue.push({ action, params, resolve, reject });
    });
  }

  private async flush(): Promise<void> {
    while (this.queue.length > 0 && this.client) {
      const item = this.queue[0]!;
      // StopTransaction/MeterValues queued before the StartTransaction answer carry a placeholder id.
      if ('transactionId' in item.params && item.params.transactionId === -1) {
        const c = this.connectors.find((k) => k.transactionId !== undefined && k.transactionId > 0);
        if (c) item.params.transactionId = c.transactionId;
      }
      try {
        const result = (await this.client.call(item.action, item.params)) as Record<string, unknown>;
        this.queue.shift();
        item.resolve(result);
      } catch (err) {
        if (!this.online) return; // offline again; keep it
        this.queue.shift();
        item.reject(err);
      }
    }
  }

  get queued(): number {
    return this.queue.length;
  }

  timestamp(t = Date.now()): string {
    const iso = new Date(t).toISOString();
    return this.opts.timestampsWithoutOffset ? iso.replace(/\.\d{3}Z$/, '') : iso;
  }

  async sendStatus(connectorId: number, status: string, errorCode = 'NoError'): Promise<void> {
    if (connectorId > 0) this.connector(connectorId).status = status;
    if (!this.online) return; // status is not queued: it is re-sent on reconnect via TriggerMessage
    await this.send('StatusNotification', { connectorId, errorCode, status, timestamp: this.timestamp() });
  }

  /** Car plugged in and tag presented: Authorize, StartTransaction, Charging. */
  async startSession(connectorId: number, idTag: string, options: { carMaxA?: number } = {}): Promise<{ transactionId: number; status: string }> {
    const c = this.connector(connectorId);
    if (options.carMaxA !== undefined) c.carMaxA = options.carMaxA;
    await this.sendStatus(connectorId, 'Preparing');
    if (this.online) {
      const auth = (await this.send('Authorize', { idTag })) as { idTagInfo: { status: string } };
      if (auth.idTagInfo.status !== 'Accepted') {
        await this.sendStatus(connectorId, 'Available');
        return { transactionId: 0, status: auth.idTagInfo.status };
      }
    }
    c.idTag = idTag;
    c.transactionId = -1;
    const res = (await this.send('StartTransaction', { connectorId, idTag, meterStart: Math.round(c.energyWh), timestamp: this.timestamp() }, true)) as {
      transactionId: number;
      idTagInfo: { status: string };
    };
    c.transactionId = res.transactionId;
    if (this.opts.car) c.car = new CarFollower(this.opts.car, c.limitA);
    this.recomputeLimits();
    if (res.idTagInfo.status !== 'Accepted') {
      await this.stopSession(connectorId, 'DeAuthorized');
      return { transactionId: res.transactionId, status: res.idTagInfo.status };
    }
    await this.sendStatus(connectorId, 'Charging');
    return { transactionId: res.transactionId, status: res.idTagInfo.status };
  }

  async stopSession(connectorId: number, reason = 'EVDisconnected'): Promise<Record<string, unknown>> {
    const c = this.connector(connectorId);
    const transactionId = c.transactionId;
    if (transactionId === undefined) throw new Error(`no session on connector ${connectorId}`);
    c.transactionId = undefined;
    // A TxProfile ends with its transaction (OCPP 1.6 §3.13.4).
    this.installed = this.installed.filter((i) => !(i.connectorId === connectorId && i.profile.chargingProfilePurpose === 'TxProfile'));
    this.recomputeLimits();
    c.drawA = 0;
    c.car = undefined;
    await this.sendStatus(connectorId, 'Finishing');
    const res = await this.send(
      'StopTransaction',
      { transactionId, idTag: c.idTag, meterStop: Math.round(c.energyWh), timestamp: this.timestamp(), reason },
      true,
    );
    c.idTag = undefined;
    await this.sendStatus(connectorId, 'Available');
    return res;
  }

  /** Advances simulated time: the car draws, energy and SoC grow, meter values are sent (or queued). */
  async tick(ms: number): Promise<void> {
    for (const c of this.connectors) {
      if (c.transactionId === undefined) continue;
      const full = c.socPercent >= 100;
      if (c.car) c.drawA = Math.round(c.car.drawA(this.carCap(c)) * 10) / 10;
      else {
        c.drawA = full || !c.available ? 0 : Math.max(0, Math.min(c.limitA, c.carMaxA, this.opts.maxCurrentA));
        if (c.drawA > 0 && c.drawA < 6) c.drawA = 0; // IEC 61851-1: no charging below 6 A
      }
      const powerW = c.drawA * this.opts.voltage * this.opts.phases;
      const wh = (powerW * ms) / 3_600_000;
      c.energyWh += wh;
      c.socPercent = Math.min(100, c.socPercent + (wh / 1000 / this.opts.batteryKwh) * 100);
      const status = full ? 'SuspendedEV' : c.drawA === 0 ? 'SuspendedEVSE' : 'Charging';
      if (status !== c.status) await this.sendStatus(c.id, status);
      const sent = this.send('MeterValues', { connectorId: c.id, transactionId: c.transactionId, meterValue: [this.meterValue(c, powerW)] }, true).catch(
        () => undefined,
      );
      if (this.online) await sent; // offline: it waits in the queue, the clock goes on
    }
  }

  /** What the car on a connector draws at this moment (A per phase), as a grid meter measures it. */
  drawNow(connectorId: number): number {
    const c = this.connector(connectorId);
    if (c.transactionId === undefined) return 0;
    return c.car ? c.car.drawA(this.carCap(c)) : c.drawA;
  }

  private carCap(c: SimConnector): number {
    return c.socPercent >= 100 || !c.available ? 0 : Math.min(c.carMaxA, this.opts.maxCurrentA);
  }

  meterValue(c: SimConnector, powerW: number): { timestamp: string; sampledValue: Array<Record<string, string>> } {
    const phases = this.opts.phases === 3 ? ['L1', 'L2', 'L3'] : ['L1'];
    return {
      timestamp: this.timestamp(),
      sampledValue: [
        { value: String(Math.round(c.energyWh)), measurand: 'Energy.Active.Import.Register', unit: 'Wh', context: 'Sample.Periodic' },
        { value: (powerW / 1000).toFixed(3), measurand: 'Power.Active.Import', unit: 'kW', context: 'Sample.Periodic' },
        ...phases.map((phase) => ({ value: c.drawA.toFixed(1), measurand: 'Current.Import', phase, unit: 'A', context: 'Sample.Periodic' })),
        ...phases.map((phase) => ({ value: String(this.opts.voltage), measurand: 'Voltage', phase: `${phase}-N`, unit: 'V', context: 'Sample.Periodic' })),
        { value: c.socPercent.toFixed(0), measurand: 'SoC', unit: 'Percent', location: 'EV', context: 'Sample.Periodic' },
      ],
    };
  }

  /** §3.13.2: a profile with the same id, or the same purpose, stack level and connector, replaces the old one. */
  installProfile(connectorId: number, profile: InstalledProfile['profile']): void {
    const limit = profile.chargingSchedule.chargingSchedulePeriod[0]!.limit;
    const limitA = profile.chargingSchedule.chargingRateUnit === 'W' ? limit / (this.opts.voltage * this.opts.phases) : limit;
    this.installed = this.installed.filter(
      (i) =>
        i.profile.chargingProfileId !== profile.chargingProfileId &&
        !(i.connectorId === connectorId && i.profile.chargingProfilePurpose === profile.chargingProfilePurpose && i.profile.stackLevel === profile.stackLevel),
    );
    this.installed.push({ connectorId, limitA, profile });
    if (this.installed.length > 100) this.installed.shift();
    this.recomputeLimits();
  }

  /**
   * The composite limit per connector (§3.13.3): a TxProfile for the running transaction wins
   * over a TxDefaultProfile (connector-specific before connector 0), and the ChargePointMaxProfile
   * caps the whole charge point, shared by the connectors that are charging.
   */
  recomputeLimits(): void {
    const top = (list: InstalledProfile[]): InstalledProfile | undefined => list.sort((a, b) => b.profile.stackLevel - a.profile.stackLevel)[0];
    const cpMax = top(this.installed.filter((i) => i.profile.chargingProfilePurpose === 'ChargePointMaxProfile'));
    const active = Math.max(1, this.connectors.filter((c) => c.transactionId !== undefined).length);
    for (const c of this.connectors) {
      const tx =
        (c.transactionId !== undefined
          ? top(
              this.installed.filter(
                (i) => i.profile.chargingProfilePurpose === 'TxProfile' && i.connectorId === c.id && i.profile.transactionId === c.transactionId,
              ),
            )
          : undefined) ??
        top(this.installed.filter((i) => i.profile.chargingProfilePurpose === 'TxDefaultProfile' && i.connectorId === c.id)) ??
        top(this.installed.filter((i) => i.profile.chargingProfilePurpose === 'TxDefaultProfile' && i.connectorId === 0));
      const limitA = Math.min(this.opts.maxCurrentA, tx?.limitA ?? Infinity, cpMax ? cpMax.limitA / active : Infinity);
      if (limitA !== c.limitA) {
        c.limitA = limitA;
        c.car?.setLimit(limitA, this.carCap(c));
        this.onLimit?.(c.id, limitA);
      }
    }
  }
}

// `node --import tsx adapters/ocpp/simulator.ts ws://127.0.0.1:8080/ocpp CP1 [password] [idTag]`
// runs one charger with a session that starts after 5 s, for manual trials. Give each simulated
// charger its own idTag: a tag holds one transaction at a time (ConcurrentTx, OCPP 1.6 §7.2).
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [endpoint, identity, password, idTag] = process.argv.slice(2);
  if (!endpoint || !identity) {
    console.error('usage: simulator.ts <ws://host:port/ocpp> <identity> [password] [idTag]');
    process.exit(2);
  }
  const sim = new ChargePointSimulator({ endpoint, identity, password, meterIntervalMs: 10_000 });
  const run = async (): Promise<void> => {
    await sim.connect();
    console.log(`${identity} connected, boot ${sim.bootStatus}`);
    await new Promise((r) => setTimeout(r, 5000));
    const s = await sim.startSession(1, idTag ?? `TAG-${identity}`.slice(0, 20));
    console.log(`session ${s.transactionId}: ${s.status}`);
  };
  run().catch((err: Error) => {
    console.error(err.message);
    process.exit(1);
  });
  process.once('SIGINT', () => void sim.close().then(() => process.exit(0)));
}
