/**
 * Runs aedes-persistence's abstract suite (the one every persistence backend must pass)
 * against LevelBrokerPersistence, each test on a fresh LevelDB in a temp dir.
 * Started by broker-persistence.test.ts as `node --import tsx --test <this file>`,
 * because the suite is written for node:test.
 */
import { test } from 'node:test';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createBrokerPersistence } from '../../storage/broker-persistence.js';

const require = createRequire(import.meta.url);
const abstractPersistence = require('aedes-persistence/abstract.js') as (opts: object) => void;

const root = mkdtempSync(join(tmpdir(), 'outpost-broker-abstract-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
let n = 0;

abstractPersistence({
  test,
  persistence: () => createBrokerPersistence({ path: join(root, String(++n)) }),
  testAsync: true,
});
