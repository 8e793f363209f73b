import { readFileSync } from 'node:fs';

/** Version of the running build, from package.json (two levels above dist/runtime). */
export const VERSION: string = (() => {
  for (const rel of ['../../package.json', '../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'outpost' && pkg.version) return pkg.version;
    } catch {}
  }
  return '0.0.0-unknown';
})();
