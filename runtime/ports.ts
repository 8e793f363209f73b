import { OutpostError } from '../core/errors.js';

/**
 * Reference-counted registry of shared physical resources (a serial port, an RS-485
 * bus). The first user opens the resource; later users with identical settings share
 * it; conflicting settings on the same path are a config error (DESIGN.md).
 */
export interface PortLease<T> {
  resource: T;
  release(): Promise<void>;
}

interface Entry {
  settingsKey: string;
  refs: number;
  resource: Promise<unknown>;
  close: (resource: unknown) => Promise<void>;
}

export class PortRegistry {
  private readonly entries = new Map<string, Entry>();

  async acquire<T>(path: string, settings: Record<string, unknown>, open: () => Promise<T>, close: (resource: T) => Promise<void>): Promise<PortLease<T>> {
    const settingsKey = JSON.stringify(settings, Object.keys(settings).sort());
    let entry = this.entries.get(path);
    if (entry && entry.settingsKey !== settingsKey) {
      throw new OutpostError('PORT_CONFLICT', `${path} is already open with ${entry.settingsKey}, not ${settingsKey}`);
    }
    if (!entry) {
      entry = { settingsKey, refs: 0, resource: open(), close: close as (r: unknown) => Promise<void> };
      this.entries.set(path, entry);
      entry.resource.catch(() => this.entries.delete(path));
    }
    entry.refs++;
    const held = entry;
    const resource = (await held.resource) as T;
    let released = false;
    return {
      resource,
      release: async () => {
        if (released) return;
        released = true;
        held.refs--;
        if (held.refs === 0 && this.entries.get(path) === held) {
          this.entries.delete(path);
          await held.close(resource);
        }
      },
    };
  }

  get size(): number {
    return this.entries.size;
  }
}
