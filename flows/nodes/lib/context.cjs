'use strict';
// Shared helpers of Outpost's Node-RED nodes. The gateway hands its in-process parts
// (bus, ingest, registry, store, topics) to Node-RED as `settings.outpost`
// (flows/node-red-settings.ts, OutpostNodeContext); nodes never talk to the broker over TCP.

/** The Outpost runtime context, or undefined when the node runs outside Outpost. */
function outpostContext(RED) {
  let ctx;
  try {
    ctx = RED.settings.outpost;
  } catch (_err) {
    // RED.settings throws for unknown keys in some Node-RED versions: treated as "not embedded".
    ctx = undefined;
  }
  return ctx?.bus && ctx.ingest && ctx.registry && ctx.store && ctx.topics ? ctx : undefined;
}

/** Marks a node that cannot work because Node-RED is not running inside Outpost. */
function requireContext(RED, node) {
  const ctx = outpostContext(RED);
  if (!ctx) {
    node.status({ fill: 'red', shape: 'ring', text: 'not inside Outpost' });
    node.error('Outpost nodes run only in Node-RED embedded in an Outpost gateway (settings.outpost is missing)');
  }
  return ctx;
}

/** Datapoint ids are `[a-z0-9_.-]{1,128}` (core/datapoint.ts). */
const DATAPOINT_ID = /^[a-z0-9_.-]{1,128}$/;

/**
 * Turns "site.pv.power, site.*.power" into matchers: exact ids, or globs where `*`
 * stands for any run of characters (ids have no `/`, so one topic level holds them all).
 */
function compilePatterns(text) {
  const parts = String(text || '')
    .split(/[\s,]+/)
    .map((p) => p.trim())
    .filter(Boolean);
  const exact = new Set();
  const globs = [];
  for (const p of parts) {
    if (!/^[a-z0-9_.*-]{1,128}$/.test(p)) throw new Error(`"${p}" is not a datapoint id or pattern ([a-z0-9_.-] and * only)`);
    if (p.includes('*')) {
      const re = new RegExp('^' + p.replace(/[.]/g, '\\.').replace(/-/g, '\\-').replace(/\*/g, '[a-z0-9_.-]*') + '$');
      globs.push(re);
    } else exact.add(p);
  }
  return {
    empty: parts.length === 0,
    exactOnly: globs.length === 0,
    exact: [...exact],
    matches: (id) => exact.has(id) || globs.some((re) => re.test(id)),
  };
}

/** Passes an error to Catch nodes with the Outpost error code on msg.outpostError. */
function fail(node, done, msg, err) {
  if (err && typeof err.toJSON === 'function' && err.code) msg.outpostError = err.toJSON();
  else msg.outpostError = { code: 'INTERNAL', message: err?.message ? err.message : String(err), retryable: false };
  node.status({ fill: 'red', shape: 'dot', text: (msg.outpostError.code || 'error') + '' });
  if (done) done(err);
  else node.error(err, msg);
}

/** A number of milliseconds from a node property, with a default and a ceiling. */
function ms(value, fallback, max) {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) return fallback;
  return Math.min(n, max);
}

module.exports = { outpostContext, requireContext, compilePatterns, fail, ms, DATAPOINT_ID };
