/**
 * Found by the MQTT fuzz (test/proof/mqtt-fuzz.test.ts): a client whose connection closes
 * after it was authenticated but before Aedes registered it (while the broker persistence
 * cleans its old subscriptions or stores its will, both asynchronous LevelDB work) is
 * registered anyway, after its close already ran. Aedes 1.2.0 then counts it as connected
 * for ever: `connectedClients` never comes down (keep-alive timers were cleared by the
 * close), so every such drop-out — a flaky cellular device is enough — eats one slot of
 * broker.limits.maxConnections until the gateway refuses all MQTT clients.
 *
 * This reproduces the window deterministically on a real in-process gateway: the LevelDB
 * persistence's cleanSubscriptions is wrapped so the socket is destroyed, and its close
 * awaited, right when Aedes is between authentication and registration.
 */
import t from 'tap';
import { connect as netConnect } from 'node:net';
import { generate } from 'mqtt-packet';
import type { Aedes, Client } from 'aedes';
import { startTestGateway } from '../helpers/gateway.js';
import { eventually, REGISTER_RACE_TODO, sleep } from './harness.js';

t.test('a client that drops between authentication and registration is not counted as connected for ever', async (t) => {
  const gw = await startTestGateway(t, { log: { level: 'warn' }, broker: { limits: { maxConnections: 5 } } });
  t.teardown(() => gw.stop());
  const aedes = gw.gateway.bus.aedes as Aedes & { persistence: { cleanSubscriptions(c: Client): Promise<void> } };
  const persistence = aedes.persistence;
  const original = persistence.cleanSubscriptions.bind(persistence);
  const dropped = new Set<string>();
  persistence.cleanSubscriptions = async (client: Client) => {
    if (client.id.startsWith('drop-')) {
      const conn = (client as unknown as { conn: { destroy(): void; once(e: string, f: () => void): void } }).conn;
      // Let the close run to its end (Aedes' client.close on the stream's close) before the connect sequence goes on.
      await new Promise<void>((resolve) => {
        conn.once('close', () => resolve());
        conn.destroy();
      });
      await sleep(20);
      if ((client as unknown as { closed: boolean }).closed) dropped.add(client.id);
    }
    return original(client);
  };
  const port = Number(new URL(gw.mqttUrl).port);
  for (let i = 0; i < 8; i++) {
    const socket = netConnect({ host: '127.0.0.1', port });
    socket.on('error', () => undefined); // the broker side destroys it; that is the point
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `drop-${i}`, keepalive: 30 }));
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
  }
  t.ok(await eventually(() => dropped.size === 8, 3000), `each of the 8 clients dropped inside the registration window (${dropped.size})`);
  const released = await eventually(() => aedes.connectedClients === 0, 3000);
  t.ok(released, `the broker counts ${aedes.connectedClients} connected client(s) after all 8 left (expected 0)`, REGISTER_RACE_TODO);
  // The consequence: with maxConnections 5, a well-behaved client is refused once the leaked ones fill the limit.
  const socket = netConnect({ host: '127.0.0.1', port });
  socket.on('error', () => undefined);
  t.teardown(() => socket.destroy());
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.write(generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'well-behaved', keepalive: 30 }));
  const code = await new Promise<number | 'closed'>((resolve) => {
    socket.once('data', (d: Buffer) => resolve(d[0] === 0x20 ? d[3]! : -1));
    socket.once('close', () => resolve('closed'));
  });
  t.equal(code, 0, 'a well-behaved client is still accepted (CONNACK 0) with maxConnections 5', REGISTER_RACE_TODO);
});

t.test('connections reset right after their CONNECT leave no admission behind (maxConnections)', async (t) => {
  const gw = await startTestGateway(t, { log: { level: 'warn' }, broker: { limits: { maxConnections: 5 } } });
  t.teardown(() => gw.stop());
  const port = Number(new URL(gw.mqttUrl).port);
  // Aedes authenticates a CONNECT after a setImmediate, also when the connection was reset
  // meanwhile (a flaky cellular link, a port scanner): the reservation must not outlive it.
  for (let i = 0; i < 20; i++) {
    const socket = netConnect({ host: '127.0.0.1', port });
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `reset-${i}`, keepalive: 30 }));
    socket.resetAndDestroy();
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
  }
  await sleep(200);
  const admitted = (gw.gateway.bus as unknown as { admitted: Set<unknown> }).admitted.size;
  t.equal(admitted, 0, `no admission left behind (${admitted})`);
  const socket = netConnect({ host: '127.0.0.1', port });
  socket.on('error', () => undefined);
  t.teardown(() => socket.destroy());
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  socket.write(generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'after-resets', keepalive: 30 }));
  const code = await new Promise<number | 'closed'>((resolve) => {
    socket.once('data', (d: Buffer) => resolve(d[0] === 0x20 ? d[3]! : -1));
    socket.once('close', () => resolve('closed'));
  });
  t.equal(code, 0, 'a well-behaved client is accepted (CONNACK 0) with maxConnections 5');
});
