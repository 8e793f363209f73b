import { OutpostError, toOutpostError } from '../../core/errors.js';
import './errors.js';
import type { Logger } from '../log.js';
import type { Clock } from '../../core/clock.js';
import type { OutboxRecord } from '../../storage/store.js';
import type { Batch } from './link.js';
import type { DeadLetterStore } from './dead-letter.js';

/** Refused single records of one batch set aside at most; more means the receiver refuses everything. */
const MAX_REFUSED_PER_BATCH = 10;

/** A refusal about the batch's content (HTTP 4xx but 401/403/404/405/407/408/429): splitting it can find the culprit. */
export function isRecordRefusal(err: OutpostError): boolean {
  return err.code === 'SYNC_REJECTED';
}

export interface Isolation {
  link: string;
  /** The refused history batch; everything before it is acknowledged (the cursor is at `first - 1`). */
  batch: Batch;
  refusal: OutpostError;
  /** Sends a contiguous part of the batch as a history batch; rejects with the link's error. */
  send(records: readonly OutboxRecord[]): Promise<void>;
  /** Everything up to `seq` is upstream or dead-lettered: the cursor may move there. */
  advance(seq: number): void;
}

/**
 * Finds the records a receiver refuses for good (a poison record: a value it cannot
 * parse, a datapoint it does not know) so that one record does not hold back the whole
 * outbox. The refused batch is split in halves, depth first and in order, down to single
 * records: accepted parts move the cursor (while no refused record lies before them),
 * single records refused twice (once more at the end, alone) go to the dead-letter store
 * with the receiver's answer, and then the cursor moves past the batch. Cost: about
 * 2·log2(n) + 1 requests per poison record.
 *
 * Guards, so that a receiver that refuses everything (a schema change, a broken
 * deployment) does not empty the outbox into the dead-letter store:
 * - at most `MAX_REFUSED_PER_BATCH` refused records per batch, and a bounded number of requests;
 * - records are set aside only when this receiver accepted something since it last
 *   refused for good: part of this batch, or any batch since the last dead-lettering.
 * Otherwise it throws `SYNC_BLOCKED` (retryable): the drain backs off and tries again,
 * the link shows `blocked`, and nothing is set aside.
 */
export class RefusalIsolator {
  /** Links whose receiver accepted a history batch since they last had records dead-lettered. */
  private readonly evidence = new Set<string>();

  constructor(
    private readonly o: {
      deadLetters: DeadLetterStore;
      log: Logger;
      clock: Clock;
      maxRefusedPerBatch?: number;
    },
  ) {}

  /** The receiver of `link` accepted a history batch. */
  accepted(link: string): void {
    this.evidence.add(link);
  }

  /** Resolves once the batch is resolved (the cursor is past it); throws a retryable error otherwise. */
  async isolate(x: Isolation): Promise<void> {
    const maxRefused = this.o.maxRefusedPerBatch ?? MAX_REFUSED_PER_BATCH;
    const records = x.batch.records;
    const maxRequests = 2 * (maxRefused + 1) * (Math.ceil(Math.log2(Math.max(2, records.length))) + 1);
    const refused: Array<{ record: OutboxRecord; err: OutpostError }> = [];
    let acceptedHere = false;
    let requests = 0;
    const blocked = (why: string): OutpostError =>
      new OutpostError('SYNC_BLOCKED', `${x.link}: records ${x.batch.first}-${x.batch.last} refused (${x.refusal.message}); ${why}`, {
        details: { status: statusOf(x.refusal) },
      });

    // Parts still to send, the next one last (depth first, in sequence order).
    const stack: Array<readonly OutboxRecord[]> = [];
    if (records.length === 1) refused.push({ record: records[0]!, err: x.refusal });
    else stack.push(...halves(records).reverse());
    while (stack.length > 0) {
      const part = stack.pop()!;
      if (requests >= maxRequests) throw blocked(`gave up isolating after ${requests} requests`);
      requests++;
      try {
        await x.send(part);
        acceptedHere = true;
        if (refused.length === 0) x.advance(part[part.length - 1]!.seq);
      } catch (err) {
        const e = toOutpostError(err);
        // Anything but a refusal of the content (the link went down, throttling): back off, resume from the cursor.
        if (!isRecordRefusal(e)) throw e;
        if (part.length > 1) {
          stack.push(...halves(part).reverse());
          continue;
        }
        refused.push({ record: part[0]!, err: e });
        if (refused.length > maxRefused) throw blocked(`more than ${maxRefused} single records refused: the receiver refuses the data, not a few records`);
      }
    }
    if (refused.length > 0 && !acceptedHere && !this.evidence.has(x.link)) {
      throw blocked('the receiver has accepted nothing since it last refused records for good, so they are kept');
    }
    // Each refused record is asked once more, alone: a receiver that changed its mind
    // meanwhile (fixed, redeployed) takes it now, and it is not set aside.
    for (const r of [...refused]) {
      try {
        await x.send([r.record]);
        refused.splice(refused.indexOf(r), 1);
      } catch (err) {
        const e = toOutpostError(err);
        if (!isRecordRefusal(e)) throw e;
        r.err = e;
      }
    }
    if (refused.length === 0) {
      // Every part was accepted in the end (e.g. 413 for the whole batch): nothing to set aside.
      x.advance(x.batch.last);
      return;
    }
    const at = this.o.clock.now();
    await this.o.deadLetters.add(
      refused.map(({ record, err }) => ({
        at,
        link: x.link,
        record,
        reason: reasonOf(err),
        ...(statusOf(err) === undefined ? {} : { status: statusOf(err) }),
        ...(answerOf(err) === undefined ? {} : { answer: answerOf(err) }),
      })),
    );
    this.evidence.delete(x.link);
    for (const { record, err } of refused) {
      this.o.log.warn(
        { link: x.link, seq: record.seq, id: record.id, reason: reasonOf(err), answer: answerOf(err)?.slice(0, 200) },
        'record refused by the receiver for good: set aside in the dead-letter store',
      );
    }
    x.advance(x.batch.last);
  }
}

function halves<T>(items: readonly T[]): [readonly T[], readonly T[]] {
  const mid = Math.ceil(items.length / 2);
  return [items.slice(0, mid), items.slice(mid)];
}

function statusOf(err: OutpostError): number | undefined {
  return (err.details as { status?: number } | undefined)?.status;
}

function answerOf(err: OutpostError): string | undefined {
  return (err.details as { answer?: string } | undefined)?.answer;
}

function reasonOf(err: OutpostError): string {
  const status = statusOf(err);
  return status === undefined ? `${err.code}: ${err.message}` : `HTTP ${status}`;
}
