// What the runtime itself records in the event log: adapters failing and recovering, sync links
// going down and up, storage turning read-only and writable. Each of these is already
// published on the bus by the part that knows (adapter host: `<prefix>/adapter/<id>/status`;
// sync service: `<prefix>/sync/status`; gateway: `<prefix>/gateway/storage`), so the event log
// listens there: no hook in those parts, and what the log says is what the dashboard and MQTT
// clients see.
import type { EventSink } from '../../core/events.js';
import type { Bus } from '../bus.js';
import type { Topics } from '../topics.js';

interface LinkStatus {
  name: string;
  state: string;
  lastError?: string;
}

/** Adapter states the host reports that mean it is down (runtime/adapter-host.ts). */
const ADAPTER_DOWN = new Set(['error', 'failed']);

function parse(payload: Buffer): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(payload.toString('utf8')) as unknown;
    return v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : undefined;
  } catch {
    // Published by the gateway as JSON; anything else on these topics is not a state to record.
    return undefined;
  }
}

function errorText(status: Record<string, unknown>): string {
  const error = status.error as { message?: unknown; code?: unknown } | undefined;
  return typeof error?.message === 'string' ? error.message : typeof status.error === 'string' ? status.error : 'no reason given';
}

/**
 * Turns state changes on the bus into events. Transitions only: an adapter retried in a loop
 * records its first failure and its recovery, not every retry (the status card counts those).
 */
export class RuntimeEvents {
  /** Adapters down now, by id: `error` (retrying) or `failed` (not retried). */
  private readonly adapters = new Map<string, string>();
  private readonly links = new Map<string, string>();
  /** Links reported down (or blocked) and not up since. */
  private readonly linksDown = new Set<string>();
  private storage: string | undefined;
  private readonly undo: Array<() => Promise<void>> = [];

  constructor(private readonly o: { bus: Pick<Bus, 'subscribe'>; topics: Topics; events: EventSink }) {}

  async start(): Promise<void> {
    const { bus, topics } = this.o;
    const statusHead = `${topics.prefix}/adapter/`;
    this.undo.push(
      await bus.subscribe(`${topics.prefix}/adapter/+/status`, (topic, payload) => {
        const status = parse(payload);
        if (status && typeof status.state === 'string') this.adapter(topic.slice(statusHead.length, -'/status'.length), status.state, status);
      }),
      await bus.subscribe(`${topics.prefix}/sync/status`, (_topic, payload) => {
        const links = parse(payload)?.links;
        if (Array.isArray(links)) for (const l of links as LinkStatus[]) if (l && typeof l.name === 'string') this.link(l);
      }),
      await bus.subscribe(topics.gatewayStorage(), (_topic, payload) => {
        const s = parse(payload);
        if (s && typeof s.state === 'string') this.storageState(s.state, typeof s.error === 'string' ? s.error : undefined);
      }),
    );
  }

  async stop(): Promise<void> {
    for (const undo of this.undo.splice(0)) await undo();
  }

  adapter(id: string, state: string, status: Record<string, unknown>): void {
    const was = this.adapters.get(id);
    if (ADAPTER_DOWN.has(state)) {
      if (was === state) return;
      this.adapters.set(id, state);
      // The host's messages name the adapter first (`meter: …`); the event says it once.
      const text = errorText(status);
      const reason = text.startsWith(`${id}: `) ? text.slice(id.length + 2) : text;
      if (state === 'failed')
        this.o.events.record({
          source: id,
          kind: 'adapter.failed',
          severity: 'alarm',
          message: `adapter ${id} failed, not retried: ${reason}`,
          data: { state, error: status.error },
        });
      else if (was === undefined)
        this.o.events.record({
          source: id,
          kind: 'adapter.error',
          severity: 'warning',
          message: `adapter ${id} failed: ${reason} (retrying)`,
          data: { state, error: status.error },
        });
      return;
    }
    if (state === 'running' && was !== undefined) {
      this.adapters.delete(id);
      this.o.events.record({ source: id, kind: 'adapter.recovered', severity: 'info', message: `adapter ${id} running again`, data: { state } });
    } else if (state === 'stopped' || state === 'disabled') this.adapters.delete(id);
  }

  link(l: LinkStatus): void {
    if (this.links.get(l.name) === l.state) return;
    this.links.set(l.name, l.state);
    const reason = typeof l.lastError === 'string' && l.lastError ? `: ${l.lastError}` : '';
    // A link retrying (connecting, down, connecting, down…) went down once.
    if (l.state === 'down' && !this.linksDown.has(l.name)) {
      this.linksDown.add(l.name);
      this.o.events.record({ source: 'sync', kind: 'link.down', severity: 'warning', message: `sync link ${l.name} down${reason}`, data: { link: l.name } });
    } else if (l.state === 'blocked') {
      this.linksDown.add(l.name);
      this.o.events.record({
        source: 'sync',
        kind: 'link.blocked',
        severity: 'warning',
        message: `sync link ${l.name}: upstream refuses records${reason}`,
        data: { link: l.name },
      });
    } else if (l.state === 'up' && this.linksDown.delete(l.name))
      this.o.events.record({ source: 'sync', kind: 'link.up', severity: 'info', message: `sync link ${l.name} up again`, data: { link: l.name } });
  }

  storageState(state: string, error: string | undefined): void {
    const was = this.storage;
    this.storage = state;
    if (state === was) return;
    if (state === 'read-only')
      this.o.events.record({
        source: 'storage',
        kind: 'storage.read-only',
        severity: 'alarm',
        message: `storage is read-only, readings are refused: ${error ?? 'no reason given'}`,
        data: { error },
      });
    else if (state === 'ok' && was === 'read-only')
      this.o.events.record({ source: 'storage', kind: 'storage.ok', severity: 'info', message: 'storage writable again' });
  }
}
