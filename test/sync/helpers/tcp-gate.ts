import { createServer, connect, type Server, type Socket } from 'node:net';
import type { Teardown } from '../../helpers/teardown.js';

/**
 * A TCP forwarder in front of a server that a test can shut: `close()` drops every
 * connection through it and refuses new ones (ECONNREFUSED, as a broker that is down or
 * unreachable), `open()` lets connections through again on the same port. The server
 * behind it keeps running, so other clients of it (a SCADA host) stay connected.
 */
export class TcpGate {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  /** Connections refused while closed are not counted: the OS refuses them. Accepted ones are. */
  accepted = 0;

  private constructor(
    readonly port: number,
    private readonly targetPort: number,
  ) {}

  static async create(t: Teardown, targetPort: number): Promise<TcpGate> {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const gate = new TcpGate(port, targetPort);
    t.teardown(() => gate.close());
    await gate.open();
    return gate;
  }

  async open(): Promise<void> {
    if (this.server) return;
    const server = createServer((inbound) => {
      this.accepted++;
      const outbound = connect(this.targetPort, '127.0.0.1');
      for (const s of [inbound, outbound]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => s.destroy());
      }
      inbound.on('close', () => outbound.destroy());
      outbound.on('close', () => inbound.destroy());
      inbound.pipe(outbound).pipe(inbound);
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }
}
