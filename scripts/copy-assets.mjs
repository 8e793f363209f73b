// Copies the data files that sit beside the sources (device templates, default flows,
// dashboard assets) into dist/, so the build runs without the source tree.
import { cpSync, readdirSync, statSync, mkdirSync } from 'node:fs';
import { join, dirname, extname } from 'node:path';

const ASSET_EXTENSIONS = new Set(['.yaml', '.yml', '.json', '.csv', '.html', '.css', '.svg', '.png', '.ico', '.txt', '.cjs']);
const ROOTS = ['core', 'adapters', 'flows', 'runtime', 'storage', 'central'];

function walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      if (name !== 'node_modules') walk(path);
    } else if (ASSET_EXTENSIONS.has(extname(name))) {
      const target = join('dist', path);
      mkdirSync(dirname(target), { recursive: true });
      cpSync(path, target);
    }
  }
}
for (const root of ROOTS) walk(root);
// The dashboard's browser modules are plain .js served as they are (no bundler).
cpSync('runtime/dashboard/public', 'dist/runtime/dashboard/public', { recursive: true });
// Outpost Central's web UI, likewise (central/web/assets.ts looks beside its module first).
cpSync('central/web/public', 'dist/central/web/public', { recursive: true });
