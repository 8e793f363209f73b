'use strict';
const { requireContext, fail } = require('./lib/context.cjs');

/** At most this many raises and clears of one node wait for storage; more are refused (bounded, 1 GB Pi). */
const MAX_IN_FLIGHT = 100;
const ALARM_ID = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
const SEVERITIES = new Set(['warning', 'alarm']);

function alarmError(code, message) {
  // The runtime's OutpostError shape, without importing the ESM runtime into CommonJS.
  const err = new Error(message);
  err.name = 'OutpostError';
  err.code = code;
  err.toJSON = () => ({ code, message, retryable: false });
  return err;
}

/**
 * What a message asks for: `true` raises, `false` clears; an object `{ active, severity,
 * message }` raises (active absent or true) or clears (active false) with its own severity and
 * message. Anything else is refused with the reason.
 */
function request(msg, config) {
  const p = msg.payload;
  let active;
  let severity = config.severity;
  let message = config.message;
  if (typeof p === 'boolean') active = p;
  else if (p !== null && typeof p === 'object' && !Array.isArray(p)) {
    if (p.active !== undefined && typeof p.active !== 'boolean') throw alarmError('ALARM_INVALID', 'msg.payload.active must be true or false');
    active = p.active !== false;
    if (p.severity !== undefined) severity = p.severity;
    if (p.message !== undefined) message = p.message;
  } else {
    throw alarmError('ALARM_INVALID', `msg.payload must be true (raise), false (clear) or { active, severity, message }, got ${JSON.stringify(p)}`);
  }
  if (!SEVERITIES.has(severity)) throw alarmError('ALARM_INVALID', `severity must be warning or alarm, got ${JSON.stringify(severity)}`);
  if (message !== undefined && message !== '' && typeof message !== 'string') throw alarmError('ALARM_INVALID', 'the message must be text');
  return { active, severity, message: message || undefined };
}

/**
 * `outpost alarm`: raises or clears an alarm of the flow's own by id. It is the gateway's alarm
 * like a configured rule's (runtime/alarms): datapoint `alarm.<id>` (stored, live, upstream
 * first), the dashboard banner, acknowledgement by an operator, the event log with source
 * `flows`. Refusals (a bad id, an id a configured rule owns, too many alarms) go to Catch nodes
 * with msg.outpostError = { code, message, retryable }.
 */
module.exports = (RED) => {
  function OutpostAlarmNode(config) {
    RED.nodes.createNode(this, config);
    const ctx = requireContext(RED, this);
    if (!ctx) return;
    if (!ctx.alarms) {
      this.status({ fill: 'red', shape: 'ring', text: 'no alarms on this gateway' });
      this.error('this gateway gives flows no alarms (settings.outpost.alarms is missing)');
      return;
    }
    const alarms = ctx.alarms;
    const defaults = { severity: config.severity || 'alarm', message: config.message || undefined };
    let inFlight = 0;

    this.on('input', (msg, send, done) => {
      const id = config.alarm || msg.alarm || msg.topic;
      let wanted;
      try {
        if (typeof id !== 'string' || !ALARM_ID.test(id))
          throw alarmError('ALARM_INVALID', `no valid alarm id: set one on the node, or in msg.alarm or msg.topic ([a-z0-9_.-], got ${JSON.stringify(id)})`);
        wanted = request(msg, defaults);
      } catch (err) {
        return fail(this, done, msg, err);
      }
      if (inFlight >= MAX_IN_FLIGHT)
        return fail(this, done, msg, alarmError('ALARM_LIMIT', `${MAX_IN_FLIGHT} alarm changes already waiting for storage; message dropped`));
      inFlight++;
      const by = `flow:${this.id}`;
      const work = wanted.active ? alarms.raise({ id, severity: wanted.severity, message: wanted.message, by }) : alarms.clear(id, by);
      work.then(
        (state) => {
          inFlight--;
          msg.alarm = state ? { id, ...state } : { id, active: false };
          const active = Boolean(state?.active);
          this.status(
            active
              ? {
                  fill: state.severity === 'alarm' ? 'red' : 'yellow',
                  shape: 'dot',
                  text: `${id}: ${state.acknowledged ? 'active, acknowledged' : 'active'}`.slice(0, 40),
                }
              : { fill: 'green', shape: 'ring', text: `${id}: clear`.slice(0, 40) },
          );
          send(msg);
          done();
        },
        (err) => {
          inFlight--;
          fail(this, done, msg, err);
        },
      );
    });
  }

  RED.nodes.registerType('outpost alarm', OutpostAlarmNode);
};
