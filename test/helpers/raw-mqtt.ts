/**
 * A raw MQTT 3.1.1 client for tests that need what a library will not do: pipeline thousands of
 * packets in one write, retransmit a PUBLISH with DUP, withhold a PUBREL, or send bytes that
 * break the protocol. Packets are built with mqtt-packet and the replies parsed with it.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { generate, parser as mqttParser, type Packet } from 'mqtt-packet';

export class RawMqtt {
  readonly received: Packet[] = [];
  private waiters: Array<() => void> = [];
  closed = false;

  private constructor(readonly socket: Socket) {
    const parser = mqttParser({ protocolVersion: 4 });
    parser.on('packet', (p: Packet) => {
      this.received.push(p);
      for (const w of this.waiters.splice(0)) w();
    });
    parser.on('error', () => this.socket.destroy());
    socket.on('data', (d: Buffer) => parser.parse(d));
    socket.on('error', () => undefined); // a refused connection is what some tests expect; `closed` tells
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** Opens a TCP connection and sends CONNECT; `awaitConnack` waits for the CONNACK too. */
  static async connect(port: number, options: { clientId: string; clean?: boolean; awaitConnack?: boolean }): Promise<RawMqtt> {
    const socket = netConnect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const c = new RawMqtt(socket);
    c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: options.clean ?? true, clientId: options.clientId, keepalive: 0 });
    if (options.awaitConnack !== false) {
      const connack = await c.waitFor((p) => p.cmd === 'connack');
      if (!connack || (connack as { returnCode?: number }).returnCode !== 0) throw new Error(`not connected: ${JSON.stringify(connack)}`);
    }
    return c;
  }

  send(...packets: Packet[]): void {
    this.socket.write(Buffer.concat(packets.map((p) => generate(p))));
  }

  writeRaw(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** The first received packet (from the start) matching `match`, or undefined after `withinMs` or a close. */
  async waitFor(match: (p: Packet) => boolean, withinMs = 5000): Promise<Packet | undefined> {
    const deadline = Date.now() + withinMs;
    for (;;) {
      const found = this.received.find(match);
      if (found || this.closed || Date.now() >= deadline) return found;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Waits until `count` packets match, or `withinMs` passed; returns those that matched. */
  async waitForCount(match: (p: Packet) => boolean, count: number, withinMs = 10_000): Promise<Packet[]> {
    await this.waitFor(() => this.received.filter(match).length >= count, withinMs);
    return this.received.filter(match);
  }

  /** Resolves when the server closed the connection, or false after `withinMs`. */
  async closedWithin(withinMs: number): Promise<boolean> {
    await this.waitFor(() => false, withinMs);
    return this.closed;
  }

  destroy(): void {
    this.socket.destroy();
  }
}
