import t from 'tap';
import { startTestGateway } from '../helpers/gateway.js';

t.test('gateway starts with the simulated adapter and serves its datapoints', async (t) => {
  const gw = await startTestGateway(t, { adapters: [{ id: 'site', type: 'simulated', interval: 100 }] });
  const res = await fetch(`${gw.httpUrl}/api/datapoints/site.grid.power`);
  t.equal(res.status, 200);
  const body = (await res.json()) as { latest: { v: number } };
  t.type(body.latest.v, 'number');
});
