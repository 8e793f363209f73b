import express from 'express';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

/**
 * Where the dashboard's files are: beside this module (source tree, or dist/ once the
 * build copies them), else the source tree next to dist/ (a build without the copy).
 */
function dashboardRoot(): string {
  const candidates = [join(here, 'public'), join(here, '..', '..', '..', 'runtime', 'dashboard', 'public')];
  const found = candidates.find((dir) => existsSync(join(dir, 'app.js')));
  if (!found) throw new Error(`dashboard files not found (looked in ${candidates.join(', ')})`);
  return found;
}

/** Browser builds of our two libraries, served from node_modules: no CDN, works offline. */
function vendorFiles(): Record<string, string> {
  const uplotDist = dirname(require.resolve('uplot/dist/uPlot.esm.js'));
  const mqttDist = join(dirname(require.resolve('mqtt/package.json')), 'dist');
  return {
    'uPlot.esm.js': join(uplotDist, 'uPlot.esm.js'),
    'uPlot.min.css': join(uplotDist, 'uPlot.min.css'),
    'mqtt.esm.js': join(mqttDist, 'mqtt.esm.js'),
  };
}

/**
 * The local web dashboard: `/` is the single page, `/ui/*` its modules and styles,
 * `/ui/vendor/*` uPlot and MQTT.js. Plain ES modules, no build step, no CDN.
 * All of it is public (it holds no data); the data comes from the API after login.
 */
export function dashboardRouter(): express.Router {
  const r = express.Router();
  const root = dashboardRoot();
  const vendor = vendorFiles();
  const staticOptions = { index: false, fallthrough: true, maxAge: 0, etag: true, lastModified: true } as const;
  r.get(['/', '/index.html'], (_req, res) => {
    res.setHeader('Cache-Control', 'no-cache');
    res.sendFile(join(root, 'index.html'));
  });
  r.get('/ui/vendor/:file', (req, res, next) => {
    const path = vendor[req.params.file];
    if (!path) return next();
    res.setHeader('Cache-Control', 'public, max-age=86400');
    res.sendFile(path);
  });
  r.use('/ui', express.static(root, staticOptions));
  return r;
}
