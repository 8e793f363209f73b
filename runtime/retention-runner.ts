import { Retention, type RetentionConfig } from '../storage/retention.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';

type RetentionStore = ConstructorParameters<typeof Retention>[0];

/**
 * Starts the storage's periodic retention pass (raw and rollup ages, the disk budget) and
 * reports each pass: what the budget dropped is counted by kind (the overflow policy is
 * explicit, storage/DESIGN.md "Retention"), a pass that dropped data or is still over the
 * budget is a warning.
 */
export function startRetention(store: RetentionStore, config: RetentionConfig, metrics: Metrics, log: Logger): Retention {
  const retention = new Retention(store, config);
  retention.start(
    (report) => {
      const dropped = report.rawDroppedForBudget + report.rollupsDroppedForBudget + report.outboxDropped;
      metrics.storageDropped.inc({ kind: 'raw' }, report.rawDroppedForBudget);
      metrics.storageDropped.inc({ kind: 'rollup' }, report.rollupsDroppedForBudget);
      metrics.storageDropped.inc({ kind: 'outbox' }, report.outboxDropped);
      (dropped > 0 || report.overBudget ? log.warn : log.info).call(
        log,
        { ...report },
        report.overBudget ? 'retention pass: still over the disk budget' : 'retention pass',
      );
    },
    (err) => log.error({ err }, 'retention pass failed'),
  );
  return retention;
}
