import { sep } from 'node:path';
import type { Logger } from '../runtime/log.js';

/**
 * Keeps an error thrown by flow code from taking the gateway down (issue 9: "a crash in a
 * flow does not take down the gateway"). Node-RED catches what a node throws while handling
 * a message; what escapes it — a rejected promise nobody awaited in a function node, a throw
 * in a timer of a contributed node — reaches the process. Node's default for both is to exit.
 *
 * The guard recognises flow errors by their stack (function-node sandboxes are named
 * "Function node:<id>", node code lives under the Node-RED packages, our nodes folder or the
 * Node-RED user dir), logs them and lets the process go on. Anything else keeps Node's
 * default: print and exit 1 — unless another part of the process listens for it too.
 */
export class CrashGuard {
  private readonly markers: string[];
  private contained = 0;
  private lastLogAt = 0;
  private suppressed = 0;
  private installed = false;

  constructor(
    private readonly log: Logger,
    paths: readonly string[],
    private readonly onContained?: (err: unknown) => void,
  ) {
    this.markers = [
      'Function node:',
      `${sep}node_modules${sep}@node-red${sep}`,
      `${sep}node_modules${sep}node-red${sep}`,
      ...paths.map((p) => (p.endsWith(sep) ? p : p + sep)),
    ];
  }

  get containedCount(): number {
    return this.contained;
  }

  isFlowError(err: unknown): boolean {
    const stack = (err as { stack?: unknown } | null)?.stack;
    return typeof stack === 'string' && this.markers.some((m) => stack.includes(m));
  }

  install(): void {
    if (this.installed) return;
    this.installed = true;
    process.on('uncaughtException', this.onException);
    process.on('unhandledRejection', this.onRejection);
  }

  uninstall(): void {
    if (!this.installed) return;
    this.installed = false;
    process.off('uncaughtException', this.onException);
    process.off('unhandledRejection', this.onRejection);
  }

  private contain(err: unknown, kind: string): void {
    this.contained++;
    this.onContained?.(err);
    // A flow failing on every message must not flood the log: at most one line a second.
    const now = Date.now();
    if (now - this.lastLogAt < 1000) {
      this.suppressed++;
      return;
    }
    this.lastLogAt = now;
    this.log.error({ err, kind, suppressedSinceLast: this.suppressed }, 'error escaped a Node-RED flow; contained, the gateway goes on');
    this.suppressed = 0;
  }

  private readonly onException = (err: unknown): void => {
    if (this.isFlowError(err)) return this.contain(err, 'uncaughtException');
    if (process.listenerCount('uncaughtException') > 1) return; // someone else decides
    // Not ours: what Node does without any listener (print, exit 1).
    process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  };

  private readonly onRejection = (reason: unknown): void => {
    if (this.isFlowError(reason)) return this.contain(reason, 'unhandledRejection');
    if (process.listenerCount('unhandledRejection') > 1) return;
    // Node's default mode ("throw") raises it as an uncaught exception.
    throw reason;
  };
}
