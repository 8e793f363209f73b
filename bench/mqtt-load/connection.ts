/** A raw MQTT connection for the load generator: a net.Socket, framing, and the CONNECT handshake. */
import { connect, type Socket } from 'node:net';
import { CONNACK, FrameReader, encodeConnect, encodeDisconnect, type FrameHandler } from './frames.js';

/** How long the handshakes (CONNACK, SUBACK) may take before the broker is called unresponsive. */
export const ANSWER_TIMEOUT_MS = 20_000;

export class MqttConnection {
  /** Receives every packet after CONNACK; the worker installs its own. */
  onFrame: FrameHandler = () => {};
  /** Runs once per received chunk after all its packets: where replies are batched into one write. */
  onChunkEnd: () => void = () => {};
  /** Set when the socket closed, with why (the broker may have died). */
  closedReason: string | undefined;
  private readonly closeListeners: Array<(reason: string) => void> = [];

  private constructor(readonly socket: Socket) {
    const reader = new FrameReader((type, flags, buf, body, end) => this.onFrame(type, flags, buf, body, end));
    let lastError = '';
    socket.on('data', (chunk: Buffer) => {
      reader.push(chunk);
      this.onChunkEnd();
    });
    socket.on('error', (err) => (lastError = err.message));
    socket.on('close', () => {
      this.closedReason = lastError || 'closed by the broker';
      for (const listener of this.closeListeners) listener(this.closedReason);
    });
  }

  static async open(host: string, port: number, clientId: string): Promise<MqttConnection> {
    const socket = connect({ host, port });
    // Our writes are already batched; Nagle would only delay the QoS 1 refills and PUBACKs.
    socket.setNoDelay(true);
    const conn = new MqttConnection(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    let timer: NodeJS.Timeout | undefined;
    const connack = new Promise<void>((resolve, reject) => {
      // A broker that is alive but does not answer is a finding too; say which step hung.
      timer = setTimeout(() => {
        reject(new Error(`no CONNACK within ${ANSWER_TIMEOUT_MS / 1000} s`));
        socket.destroy();
      }, ANSWER_TIMEOUT_MS);
      conn.onFrame = (type, _flags, buf, body) => {
        if (type !== CONNACK) return reject(new Error(`expected CONNACK, got packet type ${type}`));
        const code = buf[body + 1];
        if (code === 0) resolve();
        else reject(new Error(`CONNACK refused: return code ${code}`));
      };
      conn.onClose((reason) => reject(new Error(`connection closed before CONNACK: ${reason}`)));
    });
    socket.write(encodeConnect(clientId));
    await connack.finally(() => clearTimeout(timer));
    conn.onFrame = () => {};
    return conn;
  }

  onClose(listener: (reason: string) => void): void {
    if (this.closedReason !== undefined) listener(this.closedReason);
    else this.closeListeners.push(listener);
  }

  /** DISCONNECT, then close; resolves when the socket is closed (or at once if it already is). */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.closedReason !== undefined || this.socket.destroyed) return resolve();
      this.onClose(() => resolve());
      this.socket.end(encodeDisconnect());
      setTimeout(() => this.socket.destroy(), 2000).unref();
    });
  }
}
