import type { Duplex } from 'node:stream';

interface Pending {
  /** Undefined for a QoS 0 message: it takes a place in the window but gets no PUBACK. */
  messageId: number | undefined;
  committed: boolean;
}

/**
 * How many messages of one receiver connection commit at once, across its reconnects: a
 * connection dropped after a failure (or by the broker) leaves its other messages committing,
 * and the new network connection — which the broker fills with the same messages again —
 * starts with what those still hold. Without it, every reconnect during a long database stall
 * added a window of commits, each holding its payload: no bound on memory.
 */
export class InFlightRoom {
  private working = 0;
  private readonly waiting: Array<() => void> = [];
  private draining = false;

  constructor(readonly size: number) {}

  /** Messages granted room and not yet released. */
  get inFlight(): number {
    return this.working;
  }

  /**
   * Runs `start` with a place reserved for its message: now if there is room and nothing waits
   * before it, else once places free up (in order). Returns a function that withdraws it while
   * it still waits (its connection closed: nothing should keep it, or what it holds, alive).
   */
  whenRoom(start: () => void): () => void {
    this.waiting.push(start);
    this.drain();
    return () => {
      const i = this.waiting.indexOf(start);
      if (i >= 0) this.waiting.splice(i, 1);
    };
  }

  /** A message committed, failed or was not handled: its place goes to the next waiting one. */
  release(): void {
    this.working--;
    this.drain();
  }

  /** Grants places in a loop, not by recursion: a `start` may release its place at once. */
  private drain(): void {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.working < this.size && this.waiting.length > 0) {
        const next = this.waiting.shift()!;
        this.working++;
        next();
      }
    } finally {
      this.draining = false;
    }
  }
}

/**
 * The PUBACKs of one network connection (`stream`): each sent once its message is committed,
 * and in the order the PUBLISHes arrived: "it MUST send PUBACK packets in the order in which
 * the corresponding PUBLISH packets were received" (MQTT 3.1.1 §4.6; MQTT 5 §4.6). A message
 * committed before an earlier one waits for it. How many commit at once is the `room`'s
 * (QoS 0 messages count too); a committed message waiting for an earlier one holds no place.
 *
 * A PUBACK is only ever written on the connection its PUBLISH came on. Once a message fails
 * (`fail`), nothing more is acknowledged on that connection: the caller drops it and the
 * broker delivers every unacknowledged message again (the store keeps each seq once).
 *
 * The PUBACK is written by us rather than by MQTT.js, whose work queue would wait for each
 * message (see mqtt.ts): a PUBACK is four bytes, fixed header 0x40, remaining length 2, the
 * packet identifier (MQTT 3.1.1 §3.4); MQTT 5 allows the same four bytes for success, the
 * reason code 0x00 left out (MQTT 5 §3.4.2.1).
 */
export class AckWindow {
  private readonly pending: Pending[] = [];
  private broken = false;
  /** Taken and neither committed nor failed. */
  private working = 0;

  constructor(
    readonly stream: Duplex,
    private readonly room: InFlightRoom,
  ) {}

  /** Messages of this connection taken and not yet committed or failed. */
  get inFlight(): number {
    return this.working;
  }

  /** Whether a message of this connection failed: nothing more is acknowledged on it. */
  get failed(): boolean {
    return this.broken;
  }

  /** Whether a PUBACK can still go on this connection. */
  get open(): boolean {
    return !this.broken && !this.stream.destroyed && this.stream.writable;
  }

  /**
   * Takes a message (`messageId` undefined for QoS 0) that was given a place by the room's
   * `whenRoom`; settle it with `committed` or `fail`, which give the place back.
   */
  take(messageId: number | undefined): Pending {
    const p = { messageId, committed: false };
    this.pending.push(p);
    this.working++;
    return p;
  }

  /** Its message is committed (or refused for good): PUBACKs go for it and every committed one after it, up to the first still open. */
  committed(p: Pending): void {
    p.committed = true;
    this.working--;
    while (this.pending[0]?.committed) {
      const head = this.pending.shift()!;
      if (head.messageId !== undefined && this.open) this.stream.write(pubackBytes(head.messageId));
    }
    this.room.release();
  }

  /** Its message was not committed: no PUBACK for it or any later one on this connection. */
  fail(p: Pending): void {
    this.broken = true;
    this.working--;
    const i = this.pending.indexOf(p);
    if (i >= 0) this.pending.splice(i, 1);
    this.room.release();
  }
}

function pubackBytes(messageId: number): Buffer {
  return Buffer.from([0x40, 0x02, messageId >> 8, messageId & 0xff]);
}
