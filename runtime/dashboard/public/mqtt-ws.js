// A subscribe-only MQTT 3.1.1 client over WebSocket for the dashboard's live values
// (OASIS MQTT Version 3.1.1, 29 October 2014; sections cited as §). It replaces the MQTT.js
// browser bundle (105 kB gzip) so the dashboard stays within its 150 kB budget (issue 24):
// browsers only subscribe (the gateway's /mqtt refuses their publications), so CONNECT,
// SUBSCRIBE, PUBACK, PINGREQ and DISCONNECT are all it ever sends. The packets are made and
// read by mqtt-codec.js; this file needs a WebSocket only when a client is started.
import { ConnectionRefusedError, DISCONNECT, MqttProtocolError, PINGREQ, PacketReader, encodeConnect, encodePuback, encodeSubscribe } from './mqtt-codec.js';

export { ConnectionRefusedError, MqttProtocolError } from './mqtt-codec.js';

/**
 * One MQTT connection that stays up: it reconnects with a growing, jittered delay after any
 * close, re-subscribes after each CONNACK (Clean Session: the server forgot the subscriptions,
 * §3.1.2.4) and keeps the connection alive with PINGREQ (§3.1.2.10).
 *
 * Options: url, clientId, keepaliveSeconds (30), connectTimeoutMs (10 s: open + CONNACK),
 * minBackoffMs (1 s), maxBackoffMs (15 s), maxPacketBytes, WebSocket (the implementation,
 * default globalThis.WebSocket), and callbacks onConnect(), onMessage(topic, payload, packet),
 * onClose({ wasConnected, error }) after every closed connection or failed attempt (`error`:
 * an MqttProtocolError, a ConnectionRefusedError or undefined for a network close),
 * onSubscribeRefused(filters) when SUBACK says 0x80 (§3.9.3).
 */
export class MqttWsClient {
  constructor(options) {
    this.o = { keepaliveSeconds: 30, connectTimeoutMs: 10_000, minBackoffMs: 1000, maxBackoffMs: 15_000, WebSocket: globalThis.WebSocket, ...options };
    this.filters = [];
    this.connected = false;
    this.stopped = true;
    this.attempts = 0;
    this.nextPacketId = 1;
    /** SUBSCRIBE packets awaiting their SUBACK: packet id → filters. */
    this.pendingSubs = new Map();
    /** Socket error events seen (each followed by a close). */
    this.socketErrors = 0;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.open();
  }

  /** Subscribes (QoS 0) now if connected and again after every reconnect. */
  subscribe(topics) {
    const fresh = topics.filter((t) => !this.filters.includes(t));
    if (fresh.length === 0) return;
    this.filters.push(...fresh);
    if (this.connected) this.sendSubscribe(fresh);
  }

  /** Closes for good: DISCONNECT if connected (§3.14), no reconnect, no more callbacks. */
  stop() {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.retryTimer);
    const ws = this.ws;
    if (!ws) return;
    if (this.connected) this.send(DISCONNECT);
    this.detach(ws);
    ws.close();
  }

  open() {
    const ws = new this.o.WebSocket(this.o.url, 'mqtt'); // §6.0: the "mqtt" subprotocol [MQTT-6.0.0-3]
    ws.binaryType = 'arraybuffer';
    // An error event is always followed by a close event (WHATWG HTML, "fail the WebSocket
    // connection"), whose handler does the work; counted here, and kept after detach so that
    // closing a socket still connecting (stop) never surfaces as an unhandled error (Node's ws).
    ws.onerror = () => this.socketErrors++;
    this.ws = ws;
    this.connected = false;
    this.pingOutstanding = false;
    this.pendingSubs.clear();
    this.reader = new PacketReader({ maxPacketBytes: this.o.maxPacketBytes });
    // A handshake or CONNACK that never comes must not hold the page in "connecting" for ever.
    this.connectTimer = setTimeout(() => this.fail(ws, undefined), this.o.connectTimeoutMs);
    ws.onopen = () => {
      if (ws.protocol !== 'mqtt')
        return this.fail(ws, new MqttProtocolError('UNEXPECTED_PACKET', `the server chose websocket subprotocol "${ws.protocol}", not "mqtt" [MQTT-6.0.0-4]`));
      this.send(encodeConnect({ clientId: this.o.clientId, keepaliveSeconds: this.o.keepaliveSeconds }));
    };
    ws.onmessage = (event) => this.received(ws, event.data);
    ws.onclose = () => this.closed(ws, undefined);
  }

  received(ws, data) {
    // §6.0: control packets travel in binary frames only; anything else closes [MQTT-6.0.0-1].
    if (!(data instanceof ArrayBuffer)) return this.fail(ws, new MqttProtocolError('NOT_BINARY', 'the server sent a text websocket frame [MQTT-6.0.0-1]'));
    let packets;
    try {
      packets = this.reader.push(new Uint8Array(data));
    } catch (err) {
      return this.fail(ws, err);
    }
    for (const p of packets) {
      if (this.ws !== ws) return; // a callback stopped or replaced this connection
      const error = this.handle(p);
      if (error) return this.fail(ws, error);
    }
  }

  /** Acts on one packet; returns an error when the connection must close. */
  handle(p) {
    // §3.2: the first packet from the server is CONNACK [MQTT-3.2.0-1].
    if (!this.connected && p.type !== 'connack')
      return new MqttProtocolError('UNEXPECTED_PACKET', `the server sent ${p.type.toUpperCase()} before CONNACK [MQTT-3.2.0-1]`);
    switch (p.type) {
      case 'connack':
        if (this.connected) return new MqttProtocolError('UNEXPECTED_PACKET', 'a second CONNACK on one connection');
        if (p.returnCode !== 0) return new ConnectionRefusedError(p.returnCode);
        clearTimeout(this.connectTimer);
        this.connected = true;
        this.attempts = 0;
        this.schedulePing();
        if (this.filters.length) this.sendSubscribe(this.filters);
        this.o.onConnect?.();
        return undefined;
      case 'publish':
        // We ask for QoS 0; QoS 1 is acknowledged after delivery (§4.3.2). QoS 2 is more
        // than was granted [MQTT-3.8.4-6] and would need PUBREC/PUBREL state we do not keep.
        if (p.qos === 2) return new MqttProtocolError('UNEXPECTED_PACKET', `QoS 2 PUBLISH on ${p.topic}: this client subscribes at QoS 0`);
        this.o.onMessage?.(p.topic, p.payload, p);
        if (p.qos === 1 && this.ws) this.send(encodePuback(p.packetId));
        return undefined;
      case 'suback': {
        const filters = this.pendingSubs.get(p.packetId);
        if (!filters) return new MqttProtocolError('UNEXPECTED_PACKET', `SUBACK for packet identifier ${p.packetId}, which no SUBSCRIBE used`);
        this.pendingSubs.delete(p.packetId);
        // §3.9.3: one return code per filter, in order [MQTT-3.8.4-5].
        if (p.returnCodes.length !== filters.length)
          return new MqttProtocolError('MALFORMED_PACKET', `SUBACK with ${p.returnCodes.length} return codes for ${filters.length} filters`);
        const refused = filters.filter((_, i) => p.returnCodes[i] === 0x80);
        if (refused.length) this.o.onSubscribeRefused?.(refused);
        return undefined;
      }
      case 'pingresp':
        this.pingOutstanding = false;
        return undefined;
      default:
        // PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK answer packets this client never sends.
        return new MqttProtocolError('UNEXPECTED_PACKET', `the server sent ${p.type.toUpperCase()}, an answer to nothing this client sent`);
    }
  }

  sendSubscribe(filters) {
    const id = this.nextPacketId;
    this.nextPacketId = id === 0xffff ? 1 : id + 1;
    this.pendingSubs.set(id, filters);
    this.send(
      encodeSubscribe(
        id,
        filters.map((topic) => ({ topic, qos: 0 })),
      ),
    );
  }

  send(bytes) {
    if (this.ws?.readyState !== 1) return; // OPEN; a closing socket's close event follows
    this.ws.send(bytes);
    if (this.connected) this.schedulePing();
  }

  /**
   * §3.1.2.10: the client sends a packet at least every Keep Alive seconds, PINGREQ when it
   * has nothing else [MQTT-3.1.2-23]; without a PINGRESP within another Keep Alive period the
   * connection is dead and closes (the server itself gives up after 1.5 periods).
   */
  schedulePing() {
    clearTimeout(this.pingTimer);
    if (this.o.keepaliveSeconds === 0) return;
    const ws = this.ws;
    this.pingTimer = setTimeout(() => {
      if (this.ws !== ws) return;
      if (this.pingOutstanding) return this.fail(ws, undefined);
      this.send(PINGREQ);
      this.pingOutstanding = true;
    }, this.o.keepaliveSeconds * 1000);
  }

  /** Closes `ws` for `error` (undefined: a dead or timed-out connection) and reports it once. */
  fail(ws, error) {
    if (this.ws !== ws) return;
    this.detach(ws);
    ws.close();
    this.closed(ws, error, true);
  }

  detach(ws) {
    ws.onopen = ws.onmessage = ws.onclose = null;
    clearTimeout(this.connectTimer);
    clearTimeout(this.pingTimer);
  }

  closed(ws, error, detached = false) {
    if (this.ws !== ws) return;
    if (!detached) this.detach(ws);
    const wasConnected = this.connected;
    this.ws = undefined;
    this.connected = false;
    this.o.onClose?.({ wasConnected, error });
    if (this.stopped) return;
    // The protocol level never changes by retrying; everything else may (a restart, a full server).
    if (error instanceof ConnectionRefusedError && error.returnCode === 1) {
      this.stopped = true;
      return;
    }
    const base = Math.min(this.o.maxBackoffMs, this.o.minBackoffMs * 2 ** this.attempts++);
    // Jitter: many tabs dropped by one gateway restart do not all come back in the same instant.
    this.retryTimer = setTimeout(() => this.open(), base * (0.75 + Math.random() * 0.5));
  }
}
