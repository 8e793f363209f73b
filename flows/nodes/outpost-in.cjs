'use strict';
const { requireContext, compilePatterns } = require('./lib/context.cjs');

/**
 * `outpost in`: values of datapoints, by id or pattern, straight from the bus
 * (in-process subscription on `<prefix>/dp/<id>/value`). One message per value:
 * msg.topic = datapoint id, msg.payload = value, msg.t = measurement time, msg.q = quality.
 */
module.exports = (RED) => {
  function OutpostInNode(config) {
    RED.nodes.createNode(this, config);
    const ctx = requireContext(RED, this);
    if (!ctx) return;
    let patterns;
    try {
      patterns = compilePatterns(config.datapoints);
      if (patterns.empty) throw new Error('no datapoint id or pattern configured');
    } catch (err) {
      this.status({ fill: 'red', shape: 'ring', text: 'bad datapoints' });
      this.error(err.message);
      return;
    }
    const { bus, topics, registry, store } = ctx;
    let received = 0;
    let closed = false;
    const unsubscribers = [];

    const emit = (id, message) => {
      const dp = registry.get(id);
      const msg = { topic: id, payload: message.v, t: message.t };
      if (message.q) msg.q = message.q;
      if (dp) msg.datapoint = { id: dp.id, adapter: dp.adapter, kind: dp.kind, type: dp.type, unit: dp.unit, description: dp.description };
      received++;
      this.status({ fill: message.q ? 'yellow' : 'green', shape: 'dot', text: `${id}: ${JSON.stringify(message.v)}`.slice(0, 40) });
      this.send(msg);
    };

    const onValue = (topic, payload) => {
      // Runs inside the broker's delivery: nothing here may throw into it.
      try {
        if (closed) return;
        const parsed = topics.parseDatapointTopic(topic);
        if (parsed?.kind !== 'value' || !patterns.matches(parsed.id)) return;
        emit(parsed.id, JSON.parse(payload.toString('utf8')));
      } catch (err) {
        this.error(`value on ${topic} could not be handled: ${err.message}`);
      }
    };

    // Exact ids get their own subscriptions; any glob needs the one-level wildcard.
    const filters = patterns.exactOnly ? patterns.exact.map((id) => topics.value(id)) : [topics.value('+')];
    const ready = Promise.all(filters.map((f) => bus.subscribe(f, onValue))).then(
      (subs) => {
        unsubscribers.push(...subs);
        if (closed) return Promise.all(subs.map((u) => u()));
        this.status({ fill: 'grey', shape: 'ring', text: 'waiting for values' });
        if (config.initial) {
          for (const dp of registry.list()) {
            if (!patterns.matches(dp.id)) continue;
            const latest = store.latest(dp.id);
            if (latest) emit(dp.id, latest);
          }
        }
      },
      (err) => this.error(`subscribing failed: ${err.message}`),
    );

    this.on('close', (done) => {
      closed = true;
      ready
        .then(() => Promise.all(unsubscribers.map((u) => u())))
        .catch((err) => this.warn(`unsubscribe failed: ${err.message}`))
        .then(() => done());
    });
    this.receivedCount = () => received;
  }
  RED.nodes.registerType('outpost in', OutpostInNode);
};
