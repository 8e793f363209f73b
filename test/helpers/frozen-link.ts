import { createServer, connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Teardown } from './teardown.js';

/**
 * A TCP forwarder to `port` on loopback that can be frozen: while frozen nothing passes either
 * way and nothing is closed — the network between a client and a server that stopped answering
 * (a frozen VM, a firewall that silently drops a connection). New connections are accepted and
 * held too. A side that closes still closes the other. Thawing passes on what was held.
 */
export interface FrozenLink {
  port: number;
  freeze(): void;
  thaw(): void;
  /** Ends the freeze for new connections only: the ones it held stay silent for ever (a firewall dropped them). */
  cut(): void;
}

export async function frozenLink(t: Teardown, port: number): Promise<FrozenLink> {
  let frozen = false;
  const held: Array<{ to: Socket; data: Buffer }> = [];
  const sockets = new Set<Socket>();
  const dropped = new WeakSet<Socket>();
  const pass = (to: Socket, data: Buffer) => {
    if (dropped.has(to)) return;
    if (frozen) held.push({ to, data });
    else if (!to.destroyed) to.write(data);
  };
  const server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => s.destroy());
      s.on('close', () => sockets.delete(s));
    }
    client.on('data', (d) => pass(upstream, d));
    upstream.on('data', (d) => pass(client, d));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    port: (server.address() as AddressInfo).port,
    freeze() {
      frozen = true;
    },
    thaw() {
      frozen = false;
      for (const { to, data } of held.splice(0)) if (!to.destroyed) to.write(data);
    },
    cut() {
      for (const s of sockets) dropped.add(s);
      held.length = 0;
      frozen = false;
    },
  };
}
