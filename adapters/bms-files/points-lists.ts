// ALC points-list exports read into the point catalogue (at start, and by `outpost check`): apart
// from index.ts because they run the importer for metadata only, outside the per-file pipeline.
import { readFile } from 'node:fs/promises';
import type { AdapterContext } from '../../runtime/adapter.js';
import { OutpostError, isOutpostError } from '../../core/errors.js';
import { AlcParser, alcOptionsSchema, type AlcCatalogue, type AlcPointInfo } from './alc-webctrl.js';
import { importFile } from './importer.js';
import { PointMapper } from './mapping.js';

export async function loadCatalogue(catalogue: AlcCatalogue, path: string, lists: string[], timeZone: string, ctx: AdapterContext): Promise<void> {
  try {
    catalogue.add(JSON.parse(await readFile(path, 'utf8')) as AlcPointInfo[]);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      ctx.log.warn({ err: (err as Error).message, path }, 'ALC point catalogue unreadable; rebuilding from points lists');
  }
  for (const list of lists) catalogue.add(await readPointsList(list, timeZone, () => ctx.clock.now()));
}

/** Reads one ALC points-list export (start and `outpost check` both); CONFIG_INVALID names the file. */
export async function readPointsList(list: string, timeZone: string, now: () => number): Promise<AlcParser['catalogue']> {
  const parser = new AlcParser(alcOptionsSchema.parse({}), timeZone);
  const mapper = new PointMapper([], 'skip', 'x');
  try {
    await importFile({
      path: list,
      parser,
      mapper,
      target: { register: async () => undefined, publishValues: async () => 0, now },
      describe: () => {
        throw new OutpostError('INTERNAL', 'a points list has no values');
      },
      batchSize: 5000,
      registered: new Set(),
      checkpoint: async () => undefined,
    });
  } catch (err) {
    throw isOutpostError(err) ? new OutpostError('CONFIG_INVALID', `pointsLists: ${list}: ${err.message}`, { cause: err }) : err;
  }
  if (!parser.isPointsList)
    throw new OutpostError('CONFIG_INVALID', `pointsLists: ${list} is not a WebCTRL points list (expected "Location","Control Program","Name","Type" columns)`);
  return parser.catalogue;
}
