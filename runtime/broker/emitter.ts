import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** qlobber ships no TypeScript types; the part used here. */
interface QlobberLike<T> {
  add(topic: string, value: T): void;
  remove(topic: string, value?: T): void;
  match(topic: string): T[];
}
const { Qlobber } = require('qlobber') as { Qlobber: new <T>(options: object) => QlobberLike<T> };

export interface EmittedMessage {
  topic: string;
}
export type Listener = (message: EmittedMessage, done: () => void) => void;
type Callback = (err?: Error) => void;

const noop = (): void => undefined;

/** Topics whose listeners are remembered at most (cleared, not evicted one by one, beyond). */
const MATCH_CACHE_MAX = 10_000;

/**
 * The broker's topic router (the `mq` of Aedes), doing what mqemitter does: a message goes to
 * every listener whose filter matches its topic, at most `concurrency` messages are in delivery
 * at once, the others wait in order.
 *
 * Unlike mqemitter 7, finishing one delivery never starts the next one inside its own stack.
 * There, a delivery that completes synchronously (no listener, or an in-process listener)
 * released its slot by starting the next queued message, recursively: a few thousand queued
 * messages overflowed the stack and killed the process (a pipelined QoS 0 burst from four
 * clients did). Here queued messages are started by one loop, whatever the depth.
 */
export class TopicEmitter {
  private readonly matcher: QlobberLike<Listener>;
  /** Messages waiting for a delivery slot, with their callbacks (two arrays, one head). */
  private readonly waiting: EmittedMessage[] = [];
  private readonly waitingCallbacks: Callback[] = [];
  private waitingHead = 0;
  /** Messages released to start, run by `drain` one after another. */
  private readonly ready: EmittedMessage[] = [];
  private readonly readyCallbacks: Callback[] = [];
  private draining = false;
  /** Messages in delivery now. */
  current = 0;
  closed = false;

  /**
   * @param onListenerError a listener that throws is reported here and the loop goes on (its
   *   delivery may then never finish, holding one slot; our own listeners do not throw).
   */
  constructor(
    readonly concurrency: number,
    private readonly onListenerError: (err: unknown, topic: string) => void,
  ) {
    // [MQTT-4.7.1-3]: empty levels match wildcards, as Aedes configures mqemitter.
    this.matcher = new Qlobber<Listener>({ separator: '/', wildcard_one: '+', wildcard_some: '#', match_empty_levels: true });
  }

  /** Messages waiting for a slot. */
  get length(): number {
    return this.waiting.length - this.waitingHead;
  }

  on(topic: string, listener: Listener, done?: () => void): this {
    this.matcher.add(topic, listener);
    this.matches.clear();
    if (done) setImmediate(done);
    return this;
  }

  removeListener(topic: string, listener: Listener, done?: () => void): this {
    setImmediate(() => {
      this.matcher.remove(topic, listener);
      this.matches.clear();
      done?.();
    });
    return this;
  }

  removeAllListeners(topic: string, done?: () => void): this {
    this.matcher.remove(topic);
    this.matches.clear();
    if (done) setImmediate(done);
    return this;
  }

  emit(message: EmittedMessage, callback: Callback = noop): this {
    if (this.closed) {
      callback(new Error('the topic emitter is closed'));
      return this;
    }
    if (this.concurrency > 0 && this.current >= this.concurrency) {
      this.waiting.push(message);
      this.waitingCallbacks.push(callback);
    } else {
      this.start(message, callback);
    }
    return this;
  }

  close(callback: () => void): this {
    this.closed = true;
    setImmediate(callback);
    return this;
  }

  /** Takes a slot and delivers; when called while delivering (a nested release), only queues it for the loop. */
  private start(message: EmittedMessage, callback: Callback): void {
    this.current++;
    this.ready.push(message);
    this.readyCallbacks.push(callback);
    if (this.draining) return;
    this.draining = true;
    let i = 0;
    try {
      for (; i < this.ready.length; i++) this.deliver(this.ready[i]!, this.readyCallbacks[i]!);
    } finally {
      // All delivered; or a callback threw at i, and the rest go out with the next start.
      this.ready.splice(0, i + 1);
      this.readyCallbacks.splice(0, i + 1);
      this.draining = false;
    }
  }

  /**
   * Listeners per topic, as the matcher last answered, until the subscriptions change: a site
   * publishes on the same few thousand topics over and over, and matching splits the topic
   * and walks the trie each time.
   */
  private readonly matches = new Map<string, Listener[]>();

  private listenersOf(topic: string): Listener[] {
    let listeners = this.matches.get(topic);
    if (!listeners) {
      if (this.matches.size >= MATCH_CACHE_MAX) this.matches.clear();
      this.matches.set(topic, (listeners = this.matcher.match(topic)));
    }
    return listeners;
  }

  private deliver(message: EmittedMessage, callback: Callback): void {
    const listeners = this.listenersOf(message.topic);
    let left = listeners.length;
    const delivered = (): void => {
      if (--left === 0) this.finish(callback);
    };
    if (left === 0) {
      this.finish(callback);
      return;
    }
    for (const listener of listeners) {
      try {
        listener.call(this, message, delivered);
      } catch (err) {
        this.onListenerError(err, message.topic);
      }
    }
  }

  /** A delivery finished: its callback, then its slot goes to the oldest waiting message (also when the callback throws). */
  private finish(callback: Callback): void {
    try {
      callback();
    } finally {
      this.release();
    }
  }

  private release(): void {
    this.current--;
    if (this.waitingHead === this.waiting.length) return;
    const message = this.waiting[this.waitingHead]!;
    const callback = this.waitingCallbacks[this.waitingHead]!;
    this.waitingHead++;
    if (this.waitingHead === this.waiting.length) {
      this.waiting.length = 0;
      this.waitingCallbacks.length = 0;
      this.waitingHead = 0;
    } else if (this.waitingHead > 1024 && this.waitingHead * 2 > this.waiting.length) {
      this.waiting.splice(0, this.waitingHead);
      this.waitingCallbacks.splice(0, this.waitingHead);
      this.waitingHead = 0;
    }
    this.start(message, callback);
  }
}
