// Live values over MQTT-over-websocket (/mqtt), authenticated by the session cookie.
// One connection for the page; listeners per datapoint id or per adapter status.
// The client is our own subscribe-only MQTT 3.1.1 client (mqtt-ws.js + mqtt-codec.js, 8 kB gzip; MQTT.js was 105 kB).
import { MqttWsClient, ConnectionRefusedError } from './mqtt-ws.js';
import { checkSession, get } from './api.js';

/** The gateway's `broker.prefix` when it does not say (a gateway older than `broker` in /api/auth/me). */
const DEFAULT_PREFIX = 'outpost';
const valueListeners = new Set();
const statusListeners = new Set();
const stateListeners = new Set();
const decoder = new TextDecoder();
let client;
/** The topic prefix the live client subscribed under (from GET /api/auth/me). */
let prefix;
let failedReconnects = 0;
export let connected = false;

function setConnected(up) {
  connected = up;
  for (const fn of stateListeners) fn(up);
}

/**
 * Subscribes `own` under the gateway's topic prefix, asked from the gateway (GET /api/auth/me,
 * `broker.prefix`) while the connection is being set up; asked again after the next CONNACK
 * when the gateway could not be asked. `state.asking`: a request of this client's is running.
 */
async function subscribeUnderPrefix(own, state) {
  if (own.filters.length > 0 || state.asking) return;
  state.asking = true;
  let me;
  try {
    me = await get('/api/auth/me');
  } catch (err) {
    console.debug('live values: the topic prefix could not be read yet', err);
    return;
  } finally {
    state.asking = false;
  }
  if (client !== own) return;
  prefix = me.broker?.prefix ?? DEFAULT_PREFIX;
  own.subscribe([`${prefix}/dp/+/value`, `${prefix}/adapter/+/status`]);
}

function clientId() {
  // §3.1.3.1 of MQTT 3.1.1: 1-23 characters of [0-9a-zA-Z] are accepted by every server.
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return `dashboard${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

export function startLive() {
  if (client) return;
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/mqtt`;
  const prefixState = { asking: false };
  const own = new MqttWsClient({
    url,
    clientId: clientId(),
    keepaliveSeconds: 30,
    onConnect() {
      failedReconnects = 0;
      setConnected(true);
      void subscribeUnderPrefix(own, prefixState);
    },
    onClose({ wasConnected, error }) {
      if (client !== own) return;
      setConnected(false);
      const refused = error instanceof ConnectionRefusedError;
      if (refused) console.warn(`live values: ${error.message}`);
      else if (error) console.error(`live values: ${error.message}; reconnecting`);
      // Closed by the server (session ended) or refused on reconnect (401, or CONNACK 4/5):
      // ask whether the login is gone, once per drop and then every few failed reconnects
      // (the client's growing delay between attempts bounds how often that is).
      if (wasConnected || ++failedReconnects % 3 === 0 || (refused && error.returnCode >= 4)) void checkSession();
    },
    onSubscribeRefused(filters) {
      console.error(`live values: the gateway refused the subscription to ${filters.join(', ')}`);
    },
    onMessage(topic, payload) {
      const parts = topic.split('/');
      if (parts[0] !== prefix) return;
      let msg;
      try {
        msg = JSON.parse(decoder.decode(payload));
      } catch (err) {
        console.debug(`live values: ${topic} is not JSON`, err);
        return;
      }
      if (parts[1] === 'dp' && parts[3] === 'value') {
        for (const fn of valueListeners) fn(parts[2], msg);
      } else if (parts[1] === 'adapter' && parts[3] === 'status') {
        for (const fn of statusListeners) fn(parts[2], msg);
      }
    },
  });
  client = own;
  own.start();
  // Asked while the websocket opens, so the SUBSCRIBE follows the CONNACK without a wait.
  void subscribeUnderPrefix(own, prefixState);
}

export function stopLive() {
  // Forgotten first: the close this causes is ours, not a sign the session ended.
  const closing = client;
  client = undefined;
  failedReconnects = 0;
  closing?.stop();
  if (connected) setConnected(false);
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
