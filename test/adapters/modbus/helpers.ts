import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A temp dir removed at teardown (pty links live here). */
export async function tempDir(t: Teardown, prefix = 'outpost-modbus-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export async function getJson<T = any>(url: string): Promise<{ status: number; body: T }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as T };
}

export async function postJson<T = any>(url: string, body: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as T };
}

export async function latest(httpUrl: string, id: string): Promise<{ v: unknown; t: number; q?: string } | null> {
  const { status, body } = await getJson(`${httpUrl}/api/datapoints/${id}`);
  return status === 200 ? body.latest : null;
}

export async function values(httpUrl: string, id: string, from = 0): Promise<Array<{ v: unknown; t: number; q?: string }>> {
  const { body } = await getJson(`${httpUrl}/api/datapoints/${id}/values?from=${from}&limit=10000`);
  return body.values ?? [];
}

export async function adapterStatus(httpUrl: string, id: string): Promise<any> {
  const { body } = await getJson(`${httpUrl}/api/adapters`);
  return body.items.find((s: { id: string }) => s.id === id);
}
