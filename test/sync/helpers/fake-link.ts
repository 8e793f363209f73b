import { EventEmitter } from 'node:events';
import { OutpostError } from '../../../core/errors.js';
import type { Batch, Link, LinkEvents, LinkState } from '../../../runtime/sync/link.js';
import { batchToJson } from '../../../runtime/sync/codec.js';

/**
 * An in-process metered link for the fallback logic's unit tests (the real Iridium link,
 * runtime/sync/satellite-link.ts, is tested against the modem simulator in
 * iridium-fallback.test.ts): a small per-send record limit, a message budget, and an
 * upstream that is just an array.
 */
export class FakeSatelliteLink extends EventEmitter implements Link {
  readonly role = 'fallback' as const;
  current: LinkState = 'stopped';
  lastError: string | undefined;
  readonly sent: Batch[] = [];

  constructor(
    readonly name: string,
    readonly maxBatchRecords: number,
    private budget: number,
  ) {
    super();
  }

  get state(): LinkState {
    return this.current;
  }

  async start(): Promise<void> {
    this.setState('up');
  }

  async stop(): Promise<void> {
    this.setState('stopped');
  }

  async send(batch: Batch): Promise<number> {
    if (this.current !== 'up') throw new OutpostError('SYNC_LINK_DOWN', 'modem not ready');
    if (batch.records.length > this.maxBatchRecords) throw new OutpostError('IRIDIUM_MO_SIZE', `${batch.records.length} records > ${this.maxBatchRecords}`);
    if (this.budget <= 0) {
      this.lastError = 'budget exhausted';
      throw new OutpostError('IRIDIUM_BUDGET');
    }
    this.budget--;
    this.sent.push(batch);
    return Buffer.byteLength(batchToJson(batch));
  }

  private setState(state: LinkState): void {
    this.current = state;
    this.emit('state', state);
  }

  override on<E extends keyof LinkEvents>(event: E, listener: LinkEvents[E]): this {
    return super.on(event, listener);
  }

  override off<E extends keyof LinkEvents>(event: E, listener: LinkEvents[E]): this {
    return super.off(event, listener);
  }
}

/**
 * A primary link for the pacing tests: up from the start, a batch limit of 100 records and a
 * fixed size reported per send. Subclasses decide when a send is acknowledged.
 */
export abstract class UpLink extends EventEmitter implements Link {
  readonly role = 'primary' as const;
  readonly state: LinkState = 'up';
  readonly lastError = undefined;
  readonly maxBatchRecords = 100;

  constructor(
    readonly name: string,
    protected readonly bytesPerSend: number,
  ) {
    super();
  }

  async start(): Promise<void> {
    this.emit('state', 'up');
  }

  async stop(): Promise<void> {}

  abstract send(batch: Batch): Promise<number>;

  override on<E extends keyof LinkEvents>(event: E, listener: LinkEvents[E]): this {
    return super.on(event, listener);
  }

  override off<E extends keyof LinkEvents>(event: E, listener: LinkEvents[E]): this {
    return super.off(event, listener);
  }
}
