'use strict';
const { requireContext, fail, ms, DATAPOINT_ID } = require('./lib/context.cjs');

const AGGREGATIONS = ['avg', 'min', 'max', 'sum', 'first', 'last', 'count', 'delta'];
/** Largest raw answer one message may carry: a flow is not a bulk export. */
const MAX_LIMIT = 10_000;
const YEAR = 366 * 86_400_000;

/**
 * `outpost history`: stored values of a datapoint (store.query) or rollups per interval
 * (store.queryAggregate, when the storage offers it). msg.payload = [{ t, v, ... }].
 */
module.exports = (RED) => {
  function OutpostHistoryNode(config) {
    RED.nodes.createNode(this, config);
    const ctx = requireContext(RED, this);
    if (!ctx) return;
    const { store, registry, clock } = ctx;

    this.on('input', (msg, send, done) => {
      const err = (code, message) => Object.assign(new Error(message), { code, toJSON: () => ({ code, message, retryable: false }) });
      const id = config.datapoint || msg.datapoint || msg.topic;
      if (typeof id !== 'string' || !DATAPOINT_ID.test(id))
        return fail(this, done, msg, err('DP_INVALID', `no valid datapoint id in the node or msg.topic (got ${JSON.stringify(id)})`));
      if (!registry.get(id)) return fail(this, done, msg, err('DP_UNKNOWN', `unknown datapoint "${id}"`));
      const now = clock.now();
      const to = Number.isFinite(msg.to) ? msg.to : now;
      const from = Number.isFinite(msg.from) ? msg.from : to - ms(config.range, 3_600_000, 10 * YEAR);
      const agg = msg.agg || config.agg || 'none';
      const limit = Math.min(Number(msg.limit) > 0 ? Number(msg.limit) : Number(config.limit) > 0 ? Number(config.limit) : 1000, MAX_LIMIT);
      let query;
      if (agg === 'none') {
        query = store.query(id, { from, to, limit, order: 'asc' });
      } else {
        if (!AGGREGATIONS.includes(agg)) return fail(this, done, msg, err('BAD_REQUEST', `agg must be none or one of ${AGGREGATIONS.join(', ')}`));
        // Rollups come from storage/ (issue: rollups); older stores only answer raw queries.
        if (typeof store.queryAggregate !== 'function') return fail(this, done, msg, err('BAD_REQUEST', 'this storage has no rollups: use agg "none"'));
        const interval = Math.max(1, Math.round(Number(msg.interval || config.interval) || 15)) * 60_000;
        query = store.queryAggregate(id, { from, to, interval, agg, limit });
      }
      this.status({ fill: 'blue', shape: 'ring', text: 'querying' });
      Promise.resolve(query).then(
        (rows) => {
          msg.payload = rows;
          msg.topic = id;
          msg.query = { id, from, to, agg, limit };
          this.status({ fill: 'green', shape: 'dot', text: `${rows.length} ${agg === 'none' ? 'values' : 'intervals'}` });
          send(msg);
          done();
        },
        (e) => fail(this, done, msg, e),
      );
    });
  }
  RED.nodes.registerType('outpost history', OutpostHistoryNode);
};
