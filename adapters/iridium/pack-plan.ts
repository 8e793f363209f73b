import { OutpostError } from '../../core/errors.js';
import './errors.js';
import { PRIORITIES, type Priority } from './budget.js';
import { CREDIT_BYTES, MAX_MO_BYTES, creditsFor, type MoCodec, type Reading } from './codec.js';

/** Readings waiting to be forwarded, by budget class, each list in the order it should go. */
export type ReadingClasses = Readonly<Record<Priority, readonly Reading[]>>;

export interface PackedMessage {
  bytes: Buffer;
  /** The highest class in the message: the budget class it is paid from. */
  priority: Priority;
  /** How many readings of each class (a prefix of each list) the message holds. */
  counts: Record<Priority, number>;
}

/**
 * Packs one MO message from readings of all three classes: alarms first, then latest
 * values, then history, as many as fit in `maxBytes` and in what the budget allows.
 *
 * Iridium bills per started 50 bytes (RockBLOCK credit; ISU AT Command Reference +SBDWB:
 * at most 340 bytes per MO message), so a lower class may always fill the credits a higher
 * class already pays for: history rides free in the rest of a latest-values message, latest
 * values in the rest of an alarm's. Beyond that, each class adds only as many credits as its
 * own budget class allows — the alarm reserve pays for alarms only.
 */
export function packMessage(
  codec: MoCodec,
  seq: number,
  classes: ReadingClasses,
  allows: (credits: number, priority: Priority) => boolean,
  maxBytes = MAX_MO_BYTES,
): PackedMessage | undefined {
  const counts: Record<Priority, number> = { alarm: 0, latest: 0, history: 0 };
  let taken: Reading[] = [];
  let bytes: Buffer | undefined;
  let priority: Priority | undefined;
  for (const p of PRIORITIES) {
    const list = classes[p];
    if (list.length === 0) continue;
    const paid = bytes ? creditsFor(bytes.length) * CREDIT_BYTES : 0;
    const cap = Math.min(maxBytes, Math.max(paid, affordableBytes(allows, p, maxBytes)));
    if (cap === 0) continue;
    // No message holds more than maxBytes × 8 readings (a null reading takes one bit).
    const candidate = taken.concat(list.slice(0, maxBytes * 8 - taken.length));
    let packed: { bytes: Buffer; count: number };
    try {
      packed = codec.packPrefix(candidate, seq, cap);
    } catch (err) {
      // Not even one more reading fits in what this class may spend: the message is done.
      if (err instanceof OutpostError && err.code === 'IRIDIUM_MO_SIZE' && taken.length === 0) continue;
      throw err;
    }
    // Sizes grow almost monotonically with the prefix; never give back what a higher class took.
    if (packed.count <= taken.length) break;
    counts[p] = packed.count - taken.length;
    taken = candidate.slice(0, packed.count);
    bytes = packed.bytes;
    priority ??= p;
    if (packed.count < candidate.length) break; // full, or this class's budget reached
  }
  return bytes && priority ? { bytes, priority, counts } : undefined;
}

/** Largest message (whole credits, at most `maxBytes`) the budget allows for this class now; 0 = none. */
export function affordableBytes(allows: (credits: number, priority: Priority) => boolean, priority: Priority, maxBytes = MAX_MO_BYTES): number {
  for (let credits = Math.ceil(maxBytes / CREDIT_BYTES); credits > 0; credits--) {
    if (allows(credits, priority)) return Math.min(maxBytes, credits * CREDIT_BYTES);
  }
  return 0;
}
