// Issue 24 budget: the JS and CSS the dashboard ships are at most 150 kB gzip. Counted from
// what the real dashboard router serves (runtime/dashboard/index.ts, in-process on a loopback
// port): index.html's stylesheets, module scripts and module preloads, then every module's
// static and dynamic imports, followed recursively, plus any vendor file nobody imports. Sizes
// are the bytes the router sends a browser that accepts gzip (runtime/dashboard/compressed.ts,
// zlib's default level). Size, not time: a fair assert.
import t, { type Test } from 'tap';
import express from 'express';
import type { AddressInfo } from 'node:net';
import { request } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { dashboardRouter, vendorFileNames } from '../../runtime/dashboard/index.js';

const BUDGET_BYTES = 150 * 1024;

interface Shipped {
  path: string;
  raw: number;
  gzip: number;
  /** Loaded with the Overview (index.html and the static import graph of app.js), or only when a page needs it. */
  when: 'first load' | 'on demand';
}

/**
 * The module specifiers of a JS source: `import … from '…'`, `import '…'`, `export … from '…'`
 * at the start of a statement, and `import('…')` anywhere. A dynamic import of anything but a
 * string literal cannot be followed, so it fails the test rather than be left out.
 */
export function importsOf(source: string, file: string): { static: string[]; dynamic: string[] } {
  const statics = [...source.matchAll(/^\s*(?:import|export)\s[^;'"]*?\sfrom\s*['"]([^'"]+)['"]/gm), ...source.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm)].map(
    (m) => m[1]!,
  );
  const dynamic: string[] = [];
  for (const m of source.matchAll(/\bimport\(\s*([^)]*?)\s*\)/g)) {
    const literal = /^(['"])([^'"]+)\1$/.exec(m[1]!);
    if (!literal) throw new Error(`${file}: import(${m[1]}) is not a string literal: the budget cannot follow it`);
    dynamic.push(literal[2]!);
  }
  return { static: statics, dynamic };
}

/** `@import` of a stylesheet. */
const cssImportsOf = (source: string): string[] => [...source.matchAll(/@import\s+(?:url\()?\s*['"]?([^'")\s;]+)/g)].map((m) => m[1]!);

/** One plain HTTP GET (no decoding): status, headers and the body's bytes as sent. */
function raw(
  url: string,
  headers: Record<string, string> = {},
  method = 'GET',
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function dashboardServer(t: Test): Promise<string> {
  const app = express();
  app.use(dashboardRouter());
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

t.test('the dashboard ships at most 150 kB of JS and CSS (gzip)', async (t) => {
  const base = await dashboardServer(t);

  /** GET as a browser asks (gzip accepted): the body as text and the bytes that crossed the wire. */
  const fetchShipped = async (path: string): Promise<{ text: string; wire: number; encoding: string | undefined }> => {
    const res = await raw(base + path, { 'accept-encoding': 'gzip, deflate, br' });
    if (res.status !== 200) throw new Error(`${path}: HTTP ${res.status} from the dashboard router`);
    const encoding = res.headers['content-encoding'] as string | undefined;
    const text = (encoding === 'gzip' ? gunzipSync(res.body) : res.body).toString('utf8');
    return { text, wire: res.body.length, encoding };
  };
  const fetchText = async (path: string): Promise<string> => (await fetchShipped(path)).text;
  const html = await fetchText('/');
  const stylesheets = [...html.matchAll(/<link\b[^>]*\brel="stylesheet"[^>]*\bhref="([^"]+)"/g)].map((m) => m[1]!);
  const scripts = [
    ...[...html.matchAll(/<script\b[^>]*\bsrc="([^"]+)"/g)].map((m) => m[1]!),
    // Preloaded modules are fetched with the page whether imported or not.
    ...[...html.matchAll(/<link\b[^>]*\brel="modulepreload"[^>]*\bhref="([^"]+)"/g)].map((m) => m[1]!),
  ];
  t.ok(stylesheets.length >= 1 && scripts.includes('/ui/app.js'), `index.html: stylesheets ${stylesheets.join(', ')}; scripts ${scripts.join(', ')}`);

  const shipped = new Map<string, Shipped>();
  // Breadth first; a file reached first on demand and later statically from the first load counts as first load.
  const queue: Array<{ path: string; when: Shipped['when'] }> = [
    ...stylesheets.map((path) => ({ path, when: 'first load' as const })),
    ...scripts.map((path) => ({ path, when: 'first load' as const })),
  ];
  while (queue.length) {
    const { path, when } = queue.shift()!;
    const known = shipped.get(path);
    if (known && (known.when === 'first load' || when === 'on demand')) continue;
    const got = await fetchShipped(path);
    const body = got.text;
    t.equal(got.encoding, 'gzip', `${path} is sent gzip-compressed`);
    shipped.set(path, { path, raw: Buffer.byteLength(body), gzip: got.wire, when });
    const resolve = (spec: string) => new URL(spec, base + path).pathname;
    if (path.endsWith('.css')) {
      for (const spec of cssImportsOf(body)) queue.push({ path: resolve(spec), when });
    } else {
      const found = importsOf(body, path);
      for (const spec of found.static) queue.push({ path: resolve(spec), when });
      for (const spec of found.dynamic) queue.push({ path: resolve(spec), when: 'on demand' });
    }
  }
  // Vendor files are served for the dashboard to load; one nobody imports still counts.
  for (const name of vendorFileNames()) {
    const path = `/ui/vendor/${name}`;
    if (shipped.has(path)) continue;
    const got = await fetchShipped(path);
    shipped.set(path, { path, raw: Buffer.byteLength(got.text), gzip: got.wire, when: 'on demand' });
  }

  const files = [...shipped.values()].sort((a, b) => b.gzip - a.gzip);
  const kB = (n: number) => `${(n / 1024).toFixed(1)} kB`;
  for (const f of files) t.comment(`${f.path.padEnd(36)} ${kB(f.raw).padStart(9)} raw ${kB(f.gzip).padStart(9)} gzip  ${f.when}`);
  const sum = (list: Shipped[], key: 'raw' | 'gzip') => list.reduce((s, f) => s + f[key], 0);
  const first = files.filter((f) => f.when === 'first load');
  t.comment(
    `first load (index.html's CSS + app.js and its static imports): ${first.length} files, ${kB(sum(first, 'raw'))} raw, ${kB(sum(first, 'gzip'))} gzip`,
  );
  t.comment(`everything: ${files.length} files, ${kB(sum(files, 'raw'))} raw, ${kB(sum(files, 'gzip'))} gzip (budget ${kB(BUDGET_BYTES)})`);

  // The walk must have found what the dashboard is made of, or a small sum proves nothing.
  for (const must of ['/ui/app.js', '/ui/live.js', '/ui/mqtt-ws.js', '/ui/mqtt-codec.js', '/ui/overview.js', '/ui/style.css', '/ui/vendor/uPlot.esm.js'])
    t.ok(shipped.has(must), `${must} is counted`);
  t.ok(files.filter((f) => f.when === 'on demand').length >= 8, 'the pages loaded on demand are counted');
  t.ok(sum(files, 'gzip') <= BUDGET_BYTES, `JS + CSS ${kB(sum(files, 'gzip'))} gzip <= ${kB(BUDGET_BYTES)}`);
});

t.test('the import parser', async (t) => {
  const src = `import { a } from './a.js';
import b from "/ui/vendor/b.js";
import './side-effect.js';
export { c } from './c.js';
import {
  d,
  e,
} from './de.js';
const page = async () => (await import('./lazy.js')).page;
const s = "import x from './not-a-statement.js'";`;
  t.same(importsOf(src, 'x.js'), { static: ['./a.js', '/ui/vendor/b.js', './c.js', './de.js', './side-effect.js'], dynamic: ['./lazy.js'] });
  t.throws(() => importsOf('const m = await import(name);', 'y.js'), /not a string literal/, 'a computed dynamic import fails the budget');
});

t.test('the router sends gzip to browsers that take it, plain to others, and nothing outside its folder', async (t) => {
  const base = await dashboardServer(t);
  const gz = await raw(`${base}/ui/vendor/uPlot.esm.js`, { 'accept-encoding': 'gzip' });
  t.equal(gz.headers['content-encoding'], 'gzip');
  t.equal(gz.headers.vary, 'Accept-Encoding');
  t.match(gz.headers['content-type'], /javascript/);
  t.match(gz.headers['cache-control'], /max-age=86400/, 'vendor files are cached a day');
  const plain = await raw(`${base}/ui/vendor/uPlot.esm.js`);
  t.notOk(plain.headers['content-encoding'], 'no Accept-Encoding: sent as is');
  t.ok(gunzipSync(gz.body).equals(plain.body), 'the same bytes once decompressed');
  t.ok(gz.body.length < plain.body.length / 2, `${gz.body.length} bytes instead of ${plain.body.length}`);
  const again = await raw(`${base}/ui/vendor/uPlot.esm.js`, { 'accept-encoding': 'gzip', 'if-none-match': gz.headers.etag as string });
  t.equal(again.status, 304, 'revalidation by ETag: 304');
  const head = await raw(`${base}/ui/app.js`, { 'accept-encoding': 'gzip' }, 'HEAD');
  t.equal(head.status, 200);
  t.equal(head.body.length, 0, 'HEAD has no body');
  t.equal(head.headers['cache-control'], 'public, max-age=0', 'our own modules are revalidated');
  for (const path of [
    '/ui/..%2f..%2f..%2fpackage.json',
    '/ui/%2e%2e/index.ts',
    '/ui/vendor/__proto__',
    '/ui/vendor/constructor',
    '/ui/nothing.js',
    '/ui/%00.js',
  ]) {
    const res = await raw(`${base}${path}`, { 'accept-encoding': 'gzip' });
    t.not(res.status, 200, `${path}: ${res.status}`);
  }
});
