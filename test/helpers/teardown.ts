import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The part of a tap test a helper needs: a place to register cleanup. Helpers take this
 * instead of tap's `Test` so they can be called with any test (or a stand-in).
 */
export interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A fresh directory under the OS temp dir, named `<prefix>XXXXXX`, removed at teardown. */
export async function tempDir(t: Teardown, prefix = 'outpost-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
