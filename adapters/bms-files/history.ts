import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Router } from 'express';
import { OutpostError } from '../../core/errors.js';
import { writeFileDurably } from '../../runtime/durable-file.js';

/** One imported or refused file, as `GET /api/imports/<adapter id>` lists it. */
export interface ImportHistoryEntry {
  status: 'imported' | 'failed';
  /**
   * Name as the operator dropped or uploaded it: for uploads exactly as the client sent it
   * (upload.ts `originalName`, e.g. `Zähler März.csv`), never used as a path.
   */
  file: string;
  /** Name it got in archive/ or failed/ (differs from `file` on a name clash). */
  storedAs: string;
  /** Bytes of the file. */
  size: number;
  /** When the import finished or the file was refused (epoch ms). */
  at: number;
  startedAt: number;
  /** Duration of the import, including storage. */
  ms: number;
  /** Data rows stored (for a refused file: rows before the defect, which are kept). */
  rows: number;
  points: number;
  gaps: number;
  /** Distinct datapoints the file's columns mapped to. */
  datapoints: number;
  /** Refused files: the line and reason written to `<name>.error.txt`. */
  line?: number;
  reason?: string;
  /** Imported files bringing readings older than their datapoints' raw retention: what the next retention pass deletes. */
  warning?: string;
}

/** Most entries one request may ask for, and what is kept in memory. */
const HISTORY_MAX_LIMIT = 500;
const HISTORY_DEFAULT_LIMIT = 50;

/**
 * Durable, bounded import history of one source: `import-history.jsonl` in the adapter's
 * data directory, one JSON line appended (and fsynced) per file. Archive and failed folders
 * are the operator's to prune and hold no row counts, so the history does not depend on
 * them. The file is compacted to the newest `keep` entries once it holds twice that many,
 * so it stays below ~1000 lines (~400 kB) whatever the number of imports.
 */
export class ImportHistory {
  private entries: ImportHistoryEntry[] = [];
  private lines = 0;
  private writing: Promise<void> = Promise.resolve();
  readonly path: string;

  constructor(
    dir: string,
    private readonly keep = HISTORY_MAX_LIMIT,
  ) {
    this.path = join(dir, 'import-history.jsonl');
  }

  /**
   * Reads the history. A torn last line (power lost mid-append) or a line that is not an
   * entry is dropped and the file rewritten; returns how many lines were dropped.
   */
  async load(): Promise<number> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw err;
    }
    let dropped = 0;
    const parsed: ImportHistoryEntry[] = [];
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const entry = parseEntry(line);
      if (entry) parsed.push(entry);
      else dropped++;
    }
    this.entries = parsed.slice(-this.keep);
    this.lines = parsed.length;
    if (dropped > 0 || (text.length > 0 && !text.endsWith('\n')) || parsed.length > this.keep) await this.serialise(() => this.compact());
    return dropped;
  }

  get size(): number {
    return this.entries.length;
  }

  /** Newest first. */
  recent(limit: number): ImportHistoryEntry[] {
    const out: ImportHistoryEntry[] = [];
    for (let i = this.entries.length - 1; i >= 0 && out.length < limit; i--) out.push(this.entries[i]!);
    return out;
  }

  /** Appends one entry durably (it survives power loss once this resolves). */
  add(entry: ImportHistoryEntry): Promise<void> {
    this.entries.push(entry);
    if (this.entries.length > this.keep) this.entries.splice(0, this.entries.length - this.keep);
    return this.serialise(async () => {
      if (this.lines + 1 >= 2 * this.keep) return this.compact();
      await appendDurably(this.path, JSON.stringify(entry) + '\n');
      this.lines++;
    });
  }

  private async compact(): Promise<void> {
    const snapshot = this.entries.map((e) => JSON.stringify(e) + '\n').join('');
    await writeFileDurably(this.path, snapshot);
    this.lines = this.entries.length;
  }

  private serialise(fn: () => Promise<void>): Promise<void> {
    const run = this.writing.then(fn);
    this.writing = run.catch(() => undefined);
    return run;
  }
}

async function appendDurably(path: string, text: string): Promise<void> {
  const fh = await open(path, 'a');
  try {
    await fh.appendFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function parseEntry(line: string): ImportHistoryEntry | undefined {
  let e: unknown;
  try {
    e = JSON.parse(line);
  } catch {
    return undefined; // torn by a crash mid-append: load() counts it and rewrites the file
  }
  if (!e || typeof e !== 'object') return undefined;
  const r = e as Record<string, unknown>;
  if ((r.status !== 'imported' && r.status !== 'failed') || typeof r.file !== 'string' || typeof r.at !== 'number') return undefined;
  return e as ImportHistoryEntry;
}

/** `?limit=` → 1…500 (default 50); anything else is a 400 naming the accepted range. */
function parseLimit(raw: unknown): number {
  if (raw === undefined) return HISTORY_DEFAULT_LIMIT;
  if (typeof raw !== 'string' || !/^\d{1,6}$/.test(raw)) {
    throw new OutpostError('BAD_REQUEST', `limit must be a whole number from 1 to ${HISTORY_MAX_LIMIT}, got ${JSON.stringify(raw)}`);
  }
  const n = Number(raw);
  if (n < 1 || n > HISTORY_MAX_LIMIT) throw new OutpostError('BAD_REQUEST', `limit must be from 1 to ${HISTORY_MAX_LIMIT}, got ${n}`);
  return n;
}

/**
 * `GET /api/imports/<adapter id>?limit=50`: the most recent imported and refused files,
 * newest first. Read-only; the gateway's auth middleware lets any logged-in role (viewer
 * and up) read `/api/*` with GET.
 */
export function mountHistoryRoute(router: Router, adapterId: string, history: ImportHistory): void {
  router.get(`/api/imports/${adapterId}`, (req, res) => {
    const limit = parseLimit(req.query.limit);
    res.json({ adapter: adapterId, limit, total: history.size, items: history.recent(limit) });
  });
}
