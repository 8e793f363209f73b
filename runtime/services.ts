import { OutpostError } from '../core/errors.js';

/**
 * What a service kind provides, by kind name. A layer or adapter that provides a kind adds it
 * by declaration merging, as error catalogues do (core/errors.ts):
 *
 *   declare module '../../runtime/services.js' {
 *     interface ServiceTypes { 'satellite-modem': SatelliteModem }
 *   }
 */
// biome-ignore lint/suspicious/noEmptyInterface: filled by declaration merging
export interface ServiceTypes {}

export type ServiceKind = keyof ServiceTypes & string;

type Watcher<T> = (service: T | undefined) => void;

/**
 * Services that running adapters provide to the rest of one gateway (a satellite modem to
 * the sync service, a link API to another adapter), by `(kind, name)`. One registry per
 * gateway instance, never process-wide: two gateways in one process (tests, a fleet
 * simulation) do not see each other's modems. Adapters reach it through `ctx.services`, where
 * the adapter host withdraws what an adapter provided and drops its watchers when it stops.
 */
export class ServiceRegistry {
  private readonly services = new Map<string, unknown>();
  private readonly watchers = new Map<string, Set<Watcher<unknown>>>();

  /** Provides `service` as `(kind, name)`; returns the function that withdraws it. A name is provided once at a time. */
  register<K extends ServiceKind>(kind: K, name: string, service: ServiceTypes[K]): () => void {
    const key = this.key(kind, name);
    if (this.services.has(key)) throw new OutpostError('CONFIG_INVALID', `a ${kind} "${name}" is already provided on this gateway`);
    this.services.set(key, service);
    this.notify(key, service);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      if (this.services.get(key) !== service) return;
      this.services.delete(key);
      this.notify(key, undefined);
    };
  }

  get<K extends ServiceKind>(kind: K, name: string): ServiceTypes[K] | undefined {
    return this.services.get(this.key(kind, name)) as ServiceTypes[K] | undefined;
  }

  /** Names provided of a kind right now. */
  names(kind: ServiceKind): string[] {
    const head = `${kind}\u0000`;
    return [...this.services.keys()].filter((k) => k.startsWith(head)).map((k) => k.slice(head.length));
  }

  /** Calls `watcher` now with the current service (or undefined) and on every change; returns the function that stops it. */
  watch<K extends ServiceKind>(kind: K, name: string, watcher: Watcher<ServiceTypes[K]>): () => void {
    const key = this.key(kind, name);
    let set = this.watchers.get(key);
    if (!set) this.watchers.set(key, (set = new Set()));
    const w = watcher as Watcher<unknown>;
    set.add(w);
    watcher(this.services.get(key) as ServiceTypes[K] | undefined);
    return () => {
      set.delete(w);
      if (set.size === 0 && this.watchers.get(key) === set) this.watchers.delete(key);
    };
  }

  private notify(key: string, service: unknown): void {
    for (const w of [...(this.watchers.get(key) ?? [])]) w(service);
  }

  private key(kind: string, name: string): string {
    return `${kind}\u0000${name}`;
  }
}
