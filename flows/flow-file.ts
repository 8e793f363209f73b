// The flows Node-RED starts with: a fleet flow file (checked, then written as the stored flows)
// or the demo flows seeded once. Separate from the service (node-red.ts): file handling only,
// done before Node-RED is loaded.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { access, copyFile, readFile, rename, writeFile } from 'node:fs/promises';
import { OutpostError } from '../core/errors.js';
import type { Logger } from '../runtime/log.js';
import type { FlowsConfig } from './config.js';

const here = dirname(fileURLToPath(import.meta.url));
export const DEFAULT_FLOWS_FILE = join(here, 'default-flows.json');

/** Fleet roll-out: a configured flow file replaces the stored flows; the demo seeds its flows once. */
export async function prepareFlowFile(config: FlowsConfig, userDir: string, log: Logger): Promise<void> {
  const target = join(userDir, 'flows.json');
  if (config.flowFile) {
    const flows = await readFlowFile(config.flowFile);
    const tmp = `${target}.tmp`;
    await writeFile(tmp, JSON.stringify(flows, null, 2));
    await rename(tmp, target);
    log.info({ file: config.flowFile, nodes: flows.length }, 'deploying flows from file');
    return;
  }
  if (config.defaultFlows && !(await exists(target))) {
    await readFlowFile(DEFAULT_FLOWS_FILE);
    await copyFile(DEFAULT_FLOWS_FILE, target);
    log.info({ file: DEFAULT_FLOWS_FILE }, 'seeded the default demo flows');
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Reads and checks a Node-RED flow export: a JSON array of nodes, each with `id` and `type`. */
export async function readFlowFile(path: string): Promise<Array<Record<string, unknown>>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new OutpostError('CONFIG_INVALID', `flows.flowFile: cannot read ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new OutpostError('CONFIG_INVALID', `flows.flowFile: ${path} is not JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(parsed)) throw new OutpostError('CONFIG_INVALID', `flows.flowFile: ${path} must hold a JSON array of nodes (a Node-RED flow export)`);
  parsed.forEach((n: unknown, i) => {
    const node = n as { id?: unknown; type?: unknown } | null;
    if (!node || typeof node !== 'object' || typeof node.id !== 'string' || typeof node.type !== 'string') {
      throw new OutpostError('CONFIG_INVALID', `flows.flowFile: ${path}: node [${i}] needs a string "id" and "type"`);
    }
  });
  return parsed as Array<Record<string, unknown>>;
}
