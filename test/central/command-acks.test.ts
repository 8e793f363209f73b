/**
 * What central makes of a gateway's command ack (central/commands/mqtt-link.ts, the MQTT
 * `<root>/ack`; central/store/command-model.ts ackFromWire, shared with the HTTP poll's ack):
 * only known fields, bounded; acks that are not an object with a requestId and a boolean `ok`
 * are dropped — acknowledged to the broker, never an error that would leave them in flight to
 * come again at every reconnect.
 */
import t from 'tap';
import { pino } from 'pino';
import { MqttCommandLink } from '../../central/commands/mqtt-link.js';
import type { CommandAck } from '../../central/store/contract.js';
import { ackFromWire } from '../../central/store/command-model.js';

t.test('ackFromWire keeps the known fields and bounds them', async (t) => {
  const ack = ackFromWire(
    { ok: false, requestId: 'r1', t: 5, error: { code: 'X'.repeat(100), message: 'm'.repeat(900), retryable: true, extra: 1 }, other: 'dropped' },
    1000,
    'http',
  );
  t.same(ack, { ok: false, error: { code: 'X'.repeat(64), message: 'm'.repeat(500), retryable: true }, t: 5, at: 1000, via: 'http' });
  t.same(
    ackFromWire({ ok: true, result: { v: 55 }, error: { code: 7 }, t: 'soon' }, 2000, 'mqtt'),
    { ok: true, result: { v: 55 }, at: 2000, via: 'mqtt' },
    'a code that is no string: no error; a t that is no number: none',
  );
});

t.test('MQTT acks that are JSON but not an ack object are dropped, not thrown', async (t) => {
  const recorded: Array<[string, string, CommandAck]> = [];
  const link = new MqttCommandLink({
    url: 'mqtt://127.0.0.1:1',
    connect: {},
    clientId: 'test',
    topicRoot: 'sites/+',
    ackGroup: 'g',
    log: pino({ level: 'silent' }),
    onAck: async (gateway, requestId, ack) => {
      recorded.push([gateway, requestId, ack]);
    },
    now: () => 42,
  });
  const onMessage = (payload: string) =>
    (link as unknown as { onMessage(topic: string, payload: Buffer): Promise<void> }).onMessage('sites/gw-1/ack', Buffer.from(payload));
  for (const junk of ['null', '[1,2]', '"ok"', '42', 'true', 'not json', '{"ok":true}', '{"requestId":"r","ok":"yes"}']) {
    await t.resolves(onMessage(junk), `${junk}: dropped`);
  }
  t.same(recorded, [], 'none recorded');
  await onMessage('{"requestId":"r9","ok":true,"t":7}');
  t.same(recorded, [['gw-1', 'r9', { ok: true, t: 7, at: 42, via: 'mqtt' }]], 'a well-formed ack is recorded');
});
