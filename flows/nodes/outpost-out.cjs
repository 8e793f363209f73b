'use strict';
const { requireContext, fail, DATAPOINT_ID } = require('./lib/context.cjs');

/** At most this many writes of one node wait for storage; more are refused (bounded, 1 GB Pi). */
const MAX_IN_FLIGHT = 1000;

function inferType(v) {
  if (typeof v === 'number') return 'number';
  if (typeof v === 'boolean') return 'boolean';
  if (typeof v === 'string') return 'string';
  return 'json';
}

/**
 * `outpost out`: writes msg.payload as the value of a virtual datapoint (created on first
 * write, stored, synced and shown like any other), or as a setpoint of an actuator (the
 * same validation as the REST API and MQTT). Refusals go to Catch nodes with
 * msg.outpostError = { code, message, retryable }.
 */
module.exports = (RED) => {
  function OutpostOutNode(config) {
    RED.nodes.createNode(this, config);
    const node = this;
    const ctx = requireContext(RED, node);
    if (!ctx) return;
    const { ingest, registry } = ctx;
    const mode = config.mode === 'setpoint' ? 'setpoint' : 'value';
    let inFlight = 0;

    const outpostError = (code, message) => {
      // The runtime's OutpostError shape, without importing the ESM runtime into CommonJS.
      const err = new Error(message);
      err.name = 'OutpostError';
      err.code = code;
      err.toJSON = () => ({ code, message, retryable: false });
      return err;
    };

    async function ensureVirtual(id, v) {
      const existing = registry.get(id);
      if (existing) {
        if (existing.adapter !== 'virtual') {
          throw outpostError(
            'DP_CONFLICT',
            `datapoint ${id} belongs to adapter "${existing.adapter}": flows may only write values of virtual datapoints (use setpoint mode for actuators)`,
          );
        }
        return existing;
      }
      const def = {
        id,
        adapter: 'virtual',
        kind: 'sensor',
        type: config.valueType && config.valueType !== 'auto' ? config.valueType : inferType(v),
        description: config.description || `derived in Node-RED (node ${node.id})`,
        meta: { source: 'node-red', node: node.id },
      };
      if (config.unit) def.unit = config.unit;
      return registry.register(def);
    }

    node.on('input', (msg, send, done) => {
      const id = config.datapoint || msg.datapoint || msg.topic;
      if (typeof id !== 'string' || !DATAPOINT_ID.test(id)) {
        return fail(
          node,
          done,
          msg,
          outpostError('DP_INVALID', `no valid datapoint id: set one on the node or in msg.topic ([a-z0-9_.-], got ${JSON.stringify(id)})`),
        );
      }
      if (inFlight >= MAX_IN_FLIGHT) {
        return fail(node, done, msg, outpostError('STORAGE_WRITE_FAILED', `${MAX_IN_FLIGHT} writes already waiting for storage; message dropped`));
      }
      inFlight++;
      const work =
        mode === 'setpoint'
          ? ingest.setpoint(id, setpointBody(msg), `node-red:${node.id}`).then((r) => {
              msg.setpoint = r;
              return r;
            })
          : ensureVirtual(id, msg.payload).then(() => {
              const raw = { v: msg.payload };
              if (msg.t !== undefined) raw.t = msg.t;
              if (msg.q !== undefined) raw.q = msg.q;
              return ingest.accept('node-red', id, raw);
            });
      work.then(
        (stored) => {
          inFlight--;
          msg.stored = stored;
          node.status({ fill: 'green', shape: 'dot', text: `${id}: ${JSON.stringify(stored.v)}`.slice(0, 40) });
          send(msg);
          done();
        },
        (err) => {
          inFlight--;
          fail(node, done, msg, err);
        },
      );
    });
  }

  function setpointBody(msg) {
    const body = { v: msg.payload };
    for (const k of ['min', 'max', 'expires']) if (msg[k] !== undefined) body[k] = msg[k];
    return body;
  }

  RED.nodes.registerType('outpost out', OutpostOutNode);
};
