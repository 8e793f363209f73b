// Live values over MQTT-over-websocket (/mqtt), authenticated by the session cookie.
// One connection for the page; listeners per datapoint id or per adapter status.
import mqtt from '/ui/vendor/mqtt.esm.js';
import { checkSession } from './api.js';

const PREFIX = 'outpost';
const valueListeners = new Set();
const statusListeners = new Set();
const stateListeners = new Set();
let client;
let failedReconnects = 0;
export let connected = false;

export function startLive() {
  if (client) return;
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/mqtt`;
  client = mqtt.connect(url, {
    reconnectPeriod: 2000,
    connectTimeout: 5000,
    clean: true,
    clientId: 'dashboard-' + Math.random().toString(16).slice(2, 10),
    timerVariant: 'native',
  });
  client.on('connect', () => {
    connected = true;
    failedReconnects = 0;
    for (const fn of stateListeners) fn(true);
    client.subscribe([`${PREFIX}/dp/+/value`, `${PREFIX}/adapter/+/status`], { qos: 0 });
  });
  const own = client;
  client.on('close', () => {
    const wasUp = connected;
    connected = false;
    for (const fn of stateListeners) fn(false);
    // Closed by the server (session ended) or refused on reconnect (401): ask whether the
    // login is gone, once per drop and then every few failed reconnects, not on every retry.
    if (client !== own) return;
    if (wasUp || ++failedReconnects % 5 === 0) void checkSession();
  });
  client.on('message', (topic, payload) => {
    const parts = topic.split('/');
    let msg;
    try {
      msg = JSON.parse(new TextDecoder().decode(payload));
    } catch {
      return;
    }
    if (parts[1] === 'dp' && parts[3] === 'value') {
      for (const fn of valueListeners) fn(parts[2], msg);
    } else if (parts[1] === 'adapter' && parts[3] === 'status') {
      for (const fn of statusListeners) fn(parts[2], msg);
    }
  });
}

export function stopLive() {
  // Forgotten first: the close this causes is ours, not a sign the session ended.
  const closing = client;
  client = undefined;
  failedReconnects = 0;
  closing?.end(true);
}

/** Returns an unsubscribe function; the page calls it when it is left. */
export function onValue(fn) {
  valueListeners.add(fn);
  return () => valueListeners.delete(fn);
}
export function onStatus(fn) {
  statusListeners.add(fn);
  return () => statusListeners.delete(fn);
}
export function onConnection(fn) {
  stateListeners.add(fn);
  fn(connected);
  return () => stateListeners.delete(fn);
}
