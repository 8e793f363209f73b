import type { Duplex } from 'node:stream';

interface Pending {
  /** Undefined for a QoS 0 message: it takes a place in the window but gets no PUBACK. */
  messageId: number | undefined;
  committed: boolean;
}

/**
 * Up to `size` messages of one connection committing at once (QoS 0 ones count too), each PUBACK sent once its
 * message is committed, and in the order the PUBLISHes arrived: "it MUST send PUBACK packets
 * in the order in which the corresponding PUBLISH packets were received" (MQTT 3.1.1 §4.6;
 * MQTT 5 §4.6). A message committed before an earlier one waits for it.
 *
 * One window per network connection (`stream`): a PUBACK is only ever written on the
 * connection its PUBLISH came on. Once a message fails (`fail`), nothing more is acknowledged
 * on that connection: the caller drops it and the broker delivers every unacknowledged
 * message again (the store keeps each seq once).
 *
 * The PUBACK is written by us rather than by MQTT.js, whose work queue would wait for each
 * message (see mqtt.ts): a PUBACK is four bytes, fixed header 0x40, remaining length 2, the
 * packet identifier (MQTT 3.1.1 §3.4); MQTT 5 allows the same four bytes for success, the
 * reason code 0x00 left out (MQTT 5 §3.4.2.1).
 */
export class AckWindow {
  private readonly pending: Pending[] = [];
  private readonly waitingForRoom: Array<() => void> = [];
  private broken = false;
  /** Taken and neither committed nor failed: what `size` bounds (a committed message waiting for an earlier one costs nothing). */
  private working = 0;

  constructor(
    readonly stream: Duplex,
    private readonly size: number,
  ) {}

  /** Messages taken and not yet committed or failed. */
  get inFlight(): number {
    return this.working;
  }

  /** Whether a message of this connection failed: nothing more is acknowledged on it. */
  get failed(): boolean {
    return this.broken;
  }

  /** Takes a message (`messageId` undefined for QoS 0); settle it with `committed` or `fail`. */
  take(messageId: number | undefined): Pending {
    const p = { messageId, committed: false };
    this.pending.push(p);
    this.working++;
    return p;
  }

  /** Runs `next` (MQTT.js reading the next packet) now if the window has room, else once it has. */
  whenRoom(next: () => void): void {
    if (this.working < this.size) next();
    else this.waitingForRoom.push(next);
  }

  /** Its message is committed (or refused for good): PUBACKs go for it and every committed one after it, up to the first still open. */
  committed(p: Pending): void {
    p.committed = true;
    this.working--;
    while (this.pending[0]?.committed) {
      const head = this.pending.shift()!;
      if (head.messageId !== undefined && !this.broken && !this.stream.destroyed && this.stream.writable) this.stream.write(pubackBytes(head.messageId));
    }
    this.release();
  }

  /** Its message was not committed: no PUBACK for it or any later one on this connection. */
  fail(p: Pending): void {
    this.broken = true;
    this.working--;
    const i = this.pending.indexOf(p);
    if (i >= 0) this.pending.splice(i, 1);
    this.release();
  }

  private release(): void {
    while (this.waitingForRoom.length > 0 && this.working < this.size) this.waitingForRoom.shift()!();
  }
}

function pubackBytes(messageId: number): Buffer {
  return Buffer.from([0x40, 0x02, messageId >> 8, messageId & 0xff]);
}
