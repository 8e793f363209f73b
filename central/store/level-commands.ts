import type { Value } from '../../core/datapoint.js';
import type { LevelStore } from '../../storage/level/level-store.js';
import { listLimit, matches, newCommand, sentWithCounter, withAck, withExpiry, withSend } from './command-model.js';
import type { CommandAck, CommandBody, CommandFilter, CommandRef, CommandSend, EnqueueOptions, GatewayCommand, QueuedCommand } from './contract.js';
import type { KeyedLock } from './keyed-lock.js';
import { internalSeries } from './series.js';

/** Newest commands searched for the MT counter an MO acknowledgement names. */
const MT_SEARCH = 1000;

/** Per gateway, loaded at first use: requestId → cursor, and the cursors still queued or sent. */
interface QueueIndex {
  byRequestId: Map<string, number>;
  pending: Set<number>;
}

/**
 * The command queue of the embedded store: series `$cmd/<gw>`, one entry per command at
 * t = its cursor, rewritten in place on each transition (series.ts); t = 0 holds the gateway's
 * last Iridium MT counter (cursors start at 1). Every change runs under the store's
 * per-gateway lock, so a transition reads the newest version.
 */
export class LevelCommandQueue {
  private readonly index = new Map<string, QueueIndex>();

  constructor(
    private readonly store: LevelStore,
    private readonly lock: KeyedLock,
    /** Gateways that ever sent or were sent anything. */
    private readonly known: Set<string>,
  ) {}

  enqueue(gateway: string, command: CommandBody, options: EnqueueOptions | undefined, now: number): Promise<QueuedCommand> {
    return this.lock.run(gateway, async () => {
      const idx = await this.indexOf(gateway);
      const existing = idx.byRequestId.get(command.requestId);
      if (existing !== undefined) {
        const found = await this.read(gateway, existing);
        if (found) return found;
      }
      const series = internalSeries('cmd', gateway);
      const cursor = Math.max(0, this.store.latest(series)?.t ?? 0) + 1;
      const queued = newCommand(cursor, command, options, now);
      await this.write(gateway, queued);
      idx.byRequestId.set(command.requestId, cursor);
      if (queued.state === 'queued') idx.pending.add(cursor);
      this.known.add(gateway);
      return queued;
    });
  }

  async after(gateway: string, after: number, limit: number): Promise<QueuedCommand[]> {
    if (!this.known.has(gateway) || limit <= 0) return [];
    const values = await this.store.query(internalSeries('cmd', gateway), { from: Math.max(1, after + 1), limit });
    return values.map((v) => v.v as unknown as QueuedCommand);
  }

  async get(gateway: string, ref: CommandRef): Promise<QueuedCommand | undefined> {
    if (!this.known.has(gateway)) return undefined;
    if ('cursor' in ref) return Number.isSafeInteger(ref.cursor) && ref.cursor >= 1 ? this.read(gateway, ref.cursor) : undefined;
    if ('requestId' in ref) {
      const cursor = (await this.indexOf(gateway)).byRequestId.get(ref.requestId);
      return cursor === undefined ? undefined : this.read(gateway, cursor);
    }
    const newest = await this.store.query(internalSeries('cmd', gateway), { from: 1, order: 'desc', limit: MT_SEARCH });
    return newest.map((v) => v.v as unknown as QueuedCommand).find((c) => sentWithCounter(c, ref.mtCounter));
  }

  async list(filter: CommandFilter): Promise<GatewayCommand[]> {
    const limit = listLimit(filter);
    const gateways = filter.gateway === undefined ? [...this.known].sort() : this.known.has(filter.gateway) ? [filter.gateway] : [];
    const out: GatewayCommand[] = [];
    if (filter.state === 'queued' || filter.state === 'sent') {
      // The pending set: no scan of settled commands (the router asks every tick).
      for (const gw of gateways)
        for (const cursor of (await this.indexOf(gw)).pending) {
          const c = await this.read(gw, cursor);
          if (c && matches(c, filter)) out.push({ ...c, gateway: gw });
        }
      out.sort((a, b) => b.createdAt - a.createdAt || b.cursor - a.cursor);
      return out.slice(0, limit);
    }
    for (const gw of gateways) {
      // Newest first, a page at a time, stopping at `limit` matches for this gateway.
      let to: number | undefined;
      let found = 0;
      for (;;) {
        const page = await this.store.query(internalSeries('cmd', gw), { from: 1, ...(to !== undefined ? { to } : {}), order: 'desc', limit: 200 });
        for (const v of page) {
          const c = v.v as unknown as QueuedCommand;
          if (matches(c, filter) && found++ < limit) out.push({ ...c, gateway: gw });
        }
        if (page.length < 200 || found >= limit) break;
        to = page[page.length - 1]!.t - 1;
      }
    }
    out.sort((a, b) => b.createdAt - a.createdAt || b.cursor - a.cursor);
    return out.slice(0, limit);
  }

  ack(gateway: string, cursor: number, ack: CommandAck): Promise<QueuedCommand | undefined> {
    return this.transition(gateway, cursor, (c) => withAck(c, ack));
  }

  sent(gateway: string, cursor: number, send: CommandSend): Promise<QueuedCommand | undefined> {
    return this.transition(gateway, cursor, (c) => withSend(c, send));
  }

  async expire(now: number): Promise<QueuedCommand[]> {
    const out: QueuedCommand[] = [];
    for (const gateway of this.known) {
      const idx = await this.indexOf(gateway);
      for (const cursor of [...idx.pending]) {
        const c = await this.transition(gateway, cursor, (c) => withExpiry(c, now));
        if (c?.state === 'expired') out.push(c);
      }
    }
    return out;
  }

  nextMtCounter(gateway: string, floor: number): Promise<number> {
    return this.lock.run(gateway, async () => {
      const series = internalSeries('cmd', gateway);
      const [last] = await this.store.query(series, { from: 0, to: 0, limit: 1 });
      const next = Math.max(((last?.v as number | undefined) ?? 0) + 1, Math.floor(floor));
      await this.store.write([{ id: series, t: 0, v: next }], { outbox: false });
      this.known.add(gateway);
      return next;
    });
  }

  /** Reads, changes (undefined: no change) and writes one command under the lock; answers its newest version. */
  private transition(gateway: string, cursor: number, next: (c: QueuedCommand) => QueuedCommand | undefined): Promise<QueuedCommand | undefined> {
    if (!Number.isSafeInteger(cursor) || cursor < 1) return Promise.resolve(undefined);
    return this.lock.run(gateway, async () => {
      const current = await this.read(gateway, cursor);
      if (!current) return undefined;
      const updated = next(current);
      if (!updated) return current;
      await this.write(gateway, updated);
      const idx = await this.indexOf(gateway);
      if (updated.state === 'queued' || updated.state === 'sent') idx.pending.add(cursor);
      else idx.pending.delete(cursor);
      return updated;
    });
  }

  private async read(gateway: string, cursor: number): Promise<QueuedCommand | undefined> {
    const [entry] = await this.store.query(internalSeries('cmd', gateway), { from: cursor, to: cursor, limit: 1 });
    return entry ? (entry.v as unknown as QueuedCommand) : undefined;
  }

  private write(gateway: string, c: QueuedCommand): Promise<void> {
    return this.store.write([{ id: internalSeries('cmd', gateway), t: c.cursor, v: c as unknown as Value }], { outbox: false });
  }

  /** Built from the series at first use (commands are few: memory O(commands of the gateway)). */
  private async indexOf(gateway: string): Promise<QueueIndex> {
    let idx = this.index.get(gateway);
    if (idx) return idx;
    const built: QueueIndex = { byRequestId: new Map(), pending: new Set() };
    let from = 1;
    for (;;) {
      const page = await this.store.query(internalSeries('cmd', gateway), { from, limit: 500 });
      for (const v of page) {
        const c = v.v as unknown as QueuedCommand;
        built.byRequestId.set(c.command.requestId, c.cursor);
        if (c.state === 'queued' || c.state === 'sent') built.pending.add(c.cursor);
      }
      if (page.length < 500) break;
      from = page[page.length - 1]!.t + 1;
    }
    idx = this.index.get(gateway) ?? built;
    this.index.set(gateway, idx);
    return idx;
  }
}
