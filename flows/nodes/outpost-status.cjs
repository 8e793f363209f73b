'use strict';
const { requireContext } = require('./lib/context.cjs');

/**
 * `outpost status`: adapter (and upstream link) states. On any input it answers with the
 * current list; with "on change" it also emits each update published on
 * `<prefix>/adapter/<id>/status` (in-process bus subscription).
 */
module.exports = (RED) => {
  function OutpostStatusNode(config) {
    RED.nodes.createNode(this, config);
    const ctx = requireContext(RED, this);
    if (!ctx) return;
    const { bus, topics, hostStatuses } = ctx;
    const only = String(config.adapter || '').trim();
    const wanted = (s) => !only || s.id === only;
    const summarise = (list) => {
      const bad = list.filter((s) => s.state !== 'running' && s.state !== 'disabled').length;
      this.status(
        bad ? { fill: 'red', shape: 'dot', text: `${bad} of ${list.length} not running` } : { fill: 'green', shape: 'dot', text: `${list.length} running` },
      );
    };

    this.on('input', (msg, send, done) => {
      const list = hostStatuses().filter(wanted);
      msg.payload = list;
      msg.links = typeof ctx.linkStatuses === 'function' ? ctx.linkStatuses() : [];
      summarise(list);
      send(msg);
      done();
    });

    let unsubscribe;
    let closed = false;
    if (config.onChange) {
      bus
        .subscribe(topics.adapterStatus('+'), (topic, payload) => {
          try {
            if (closed) return;
            const id = topic.split('/')[2];
            if (only && id !== only) return;
            this.send({ topic: id, payload: JSON.parse(payload.toString('utf8')) });
            summarise(hostStatuses().filter(wanted));
          } catch (err) {
            this.error(`status on ${topic} could not be handled: ${err.message}`);
          }
        })
        .then(
          (u) => {
            unsubscribe = u;
            if (closed) return u();
          },
          (err) => this.error(`subscribing failed: ${err.message}`),
        );
    }
    this.on('close', (done) => {
      closed = true;
      Promise.resolve(unsubscribe ? unsubscribe() : undefined)
        .catch((err) => this.warn(`unsubscribe failed: ${err.message}`))
        .then(() => done());
    });
  }
  RED.nodes.registerType('outpost status', OutpostStatusNode);
};
