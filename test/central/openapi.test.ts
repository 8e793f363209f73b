import t from 'tap';
import openapi from '../../central/http/openapi.json' with { type: 'json' };
import { startTestCentral } from './helpers.js';

/** Express `/a/:b/c` as OpenAPI `/a/{b}/c`. */
const asOpenApi = (path: string): string => path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

t.test('every route is in openapi.json, every path there is a route, and each is mounted', async (t) => {
  const central = await startTestCentral(t, {
    ingest: { rockblock: { verify: 'none' } },
    gateways: [{ id: 'site-1' }],
  });
  const mounted = new Set(central.http.routes.map((r) => `${r.method} ${asOpenApi(r.path)}`));
  const documented = new Set<string>();
  for (const [path, item] of Object.entries(openapi.paths)) for (const method of Object.keys(item)) documented.add(`${method} ${path}`);
  t.ok(mounted.size >= 14, `${mounted.size} routes`);
  t.same(
    [...mounted].filter((r) => !documented.has(r)),
    [],
    'no route missing from openapi.json',
  );
  t.same(
    [...documented].filter((r) => !mounted.has(r)),
    [],
    'no documented path without a route',
  );
  for (const [path, item] of Object.entries(openapi.paths)) {
    for (const [method, op] of Object.entries(item as Record<string, { summary?: string; responses?: object }>)) {
      t.ok(op.summary && op.responses && Object.keys(op.responses).length > 0, `${method} ${path}: a summary and its responses`);
    }
  }
  // Mounted for real: no request is answered by the "no route" handler.
  for (const r of central.http.routes) {
    const url = central.url + r.path.replace(':gateway', 'site-1').replace(':id', 'x');
    const res = await fetch(url, { method: r.method.toUpperCase(), headers: { authorization: 'Bearer nothing' } });
    const text = await res.text();
    t.notMatch(text, /no route/, `${r.method.toUpperCase()} ${r.path} is served (${res.status})`);
  }
  const served = (await central.get('/api/openapi.json')).body;
  t.equal(served.openapi, '3.1.0');
  t.equal(served.info.version, 'test', "the running central's version");
  t.equal((await fetch(`${central.url}/api/nothing`)).status, 404, 'an unknown path is 404');
});
