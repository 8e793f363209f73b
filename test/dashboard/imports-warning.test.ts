// Issue 21: imported history older than the raw retention is deleted at the next retention pass
// while the import history says "imported". The adapter writes a `warning` into the history
// entry (adapters/bms-files/process-file.ts); this checks that a person sees it on the Imports
// page at 1366×800 and 390×844 (the row marked, the sentence equal to the REST entry, a count
// above the table, nothing off the side of a phone), that it reaches the event log and the
// Alarms page, and that it is true: the retention pass then deletes those readings.
// Screenshots: test/artifacts/dashboard/imports-warning-desktop.png / -phone.png.
import t from 'tap';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { chromiumSkip, firstPage, launchChromium, logIn } from '../helpers/browser.js';
import { ADMIN_PASSWORD, startSecureSite } from '../security/harness.js';
import { hashToken } from '../../runtime/auth/passwords.js';
import { defaultInsightPoints, insightReportLines } from '../../adapters/bms-files/simulator.js';
import type { ImportHistoryEntry } from '../../adapters/bms-files/history.js';
import type { LevelStore } from '../../storage/level/level-store.js';

const ARTIFACTS = join(process.cwd(), 'test', 'artifacts', 'dashboard');
const UPLOAD_TOKEN = 'upload-token-imports-warning-0123456789';
const HOUR = 3600e3;
const DAY = 24 * HOUR;
const RAW_DAYS = 30;
const SIZES = [
  { name: 'desktop', width: 1366, height: 800 },
  { name: 'phone', width: 390, height: 844 },
] as const;

/** Old exports (past the 30-day retention), a fresh one, and a cut-off one the adapter refuses. */
const OLD_UMLAUT = 'Zähler März.csv';
const OLD_PLAIN = 'boiler-house-2024-export.csv';
const RECENT = 'plant-room-today.csv';
const CUT = 'plant-room-cut.csv';

const report = (start: number, truncate = false) =>
  [...insightReportLines({ points: defaultInsightPoints(3), start, rows: 4, intervalMinutes: 15, timeZone: 'UTC', truncate })].join('\r\n') + '\r\n';

interface HistoryAnswer {
  total: number;
  items: ImportHistoryEntry[];
}

t.test('Imports page: retention warnings per file, counted above the table, in the event log', { skip: chromiumSkip }, async (t) => {
  const site = await startSecureSite(t, {
    gateway: { id: 'imports-warning', name: 'Imports warning test site', timezone: 'UTC' },
    adapters: [
      {
        id: 'insight',
        type: 'bms-files',
        format: 'siemens-insight',
        upload: { tokenHashes: [hashToken(UPLOAD_TOKEN)] },
        retentionRawDays: RAW_DAYS,
      },
    ],
    auth: { loopback: 'none' },
  });
  const now = Date.now();
  const uploads: Array<[string, string]> = [
    [OLD_UMLAUT, report(now - 400 * DAY)],
    [OLD_PLAIN, report(now - 90 * DAY)],
    [RECENT, report(now - 3 * HOUR)],
    [CUT, report(now - 3 * HOUR, true)],
  ];
  for (const [name, text] of uploads) {
    const form = new FormData();
    form.append('file', new Blob([text]), name);
    const res = await fetch(`${site.httpUrl}/upload/siemens`, { method: 'POST', headers: { authorization: `Bearer ${UPLOAD_TOKEN}` }, body: form });
    t.equal(res.status, 200, `${name} uploaded`);
  }

  await mkdir(ARTIFACTS, { recursive: true });
  const context = await launchChromium(t, { viewport: SIZES[0], timezoneId: 'UTC', locale: 'en-US' });
  const page = await firstPage(context);
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(m.text());
  });
  await page.goto(site.url);
  await logIn(page, 'admin', ADMIN_PASSWORD);
  problems.length = 0; // the session probe before login is answered 401 on purpose
  const rest = <T>(path: string) => page.evaluate(`fetch(${JSON.stringify(path)}).then((r) => r.json())`) as Promise<T>;

  // The route the page reads, asked with the page's own session.
  let history: HistoryAnswer = { total: 0, items: [] };
  for (const end = Date.now() + 60_000; history.total < uploads.length; ) {
    if (Date.now() > end) throw new Error(`only ${history.total} of ${uploads.length} files in the import history after 60 s`);
    await new Promise((r) => setTimeout(r, 200));
    history = await rest<HistoryAnswer>('/api/imports/insight?limit=50');
  }
  const entry = (file: string) => history.items.find((e) => e.file === file)!;
  const warned = history.items.filter((e) => e.warning);
  t.same(warned.map((e) => e.file).sort(), [OLD_PLAIN, OLD_UMLAUT].sort(), 'the two old exports carry a retention warning in the history');
  for (const e of warned) {
    t.equal(e.status, 'imported', `${e.file}: still "imported"`);
    t.match(e.warning, /^12 reading\(s\) of 3 datapoint\(s\) are older than their raw retention and will be deleted at the next retention pass/);
    t.match(e.warning, /keeps 30 days \(its adapter's retention\)/);
  }
  t.notOk(entry(RECENT).warning, 'the fresh export has none');
  t.equal(entry(CUT).status, 'failed', 'the cut-off export is refused');

  const expectedSummary = `${warned.length} files brought readings older than the raw retention; they will be deleted at the next retention pass — set retentionRawDays on the adapter`;
  const inViewport = async (sel: ReturnType<Page['locator']>, width: number) => {
    const b = (await sel.boundingBox())!;
    return b.x >= 0 && b.x + b.width <= width + 0.5;
  };

  for (const size of SIZES) {
    await t.test(`${size.name} ${size.width}×${size.height}`, async (t) => {
      await page.setViewportSize({ width: size.width, height: size.height });
      await page.goto('about:blank'); // a full load at each size, so the page asks the route again
      const answered = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/imports/insight' && r.status() === 200);
      await page.goto(`${site.url}/#/imports`);
      // What the page itself was told: its rows must say the same.
      const pageHistory = (await (await answered).json()) as HistoryAnswer;
      const source = page.locator('section[data-source="insight"]');
      const table = source.locator('table.imports');
      await table.locator(`tr[data-file="${OLD_UMLAUT}"]`).waitFor({ timeout: 30_000 });

      const summary = source.locator('.import-retention-summary');
      await summary.waitFor({ timeout: 10_000 });
      t.equal(((await summary.textContent()) ?? '').trim(), expectedSummary, 'the line above the table counts the files with a warning');
      t.ok(await inViewport(summary, size.width), 'the summary is inside the screen');

      for (const e of pageHistory.items.filter((i) => i.warning)) {
        const row = table.locator(`tr[data-file="${e.file}"]`);
        const mark = row.locator('.import-warning-mark');
        t.ok(await mark.isVisible(), `${e.file}: the row is marked`);
        t.match(((await mark.textContent()) ?? '').trim(), /^⚠\s*past retention$/, 'the marker says it in words');
        // The sentence is a note (accessible role) and equals the history entry the page was given.
        const note = row.getByRole('note');
        t.equal(((await note.textContent()) ?? '').trim(), e.warning, `${e.file}: the warning shown is the REST entry's`);
        t.equal(e.warning, entry(e.file).warning, 'the same as the route answered the test');
        t.ok(await note.isVisible(), 'visible');
        t.ok(await inViewport(note, size.width), `${e.file}: the warning is inside the screen (no sideways scroll to read it)`);
        t.ok(await inViewport(mark, size.width), 'and so is the marker');
      }
      const recent = table.locator(`tr[data-file="${RECENT}"]`);
      t.equal(await recent.locator('.import-warning-mark').count(), 0, 'the fresh export is not marked');
      t.equal(await recent.getByRole('note').count(), 0);

      // The name the operator uploaded, then the name on disk where it differs.
      const umlaut = entry(OLD_UMLAUT);
      t.not(umlaut.storedAs, OLD_UMLAUT, 'stored under a safe name');
      const nameCell = table.locator(`tr[data-file="${OLD_UMLAUT}"] th`);
      t.equal(((await nameCell.textContent()) ?? '').trim(), `${OLD_UMLAUT}archived as ${umlaut.storedAs}`, 'original name, then where it is');
      t.equal(((await nameCell.locator('.stored-as').textContent()) ?? '').trim(), `archived as ${umlaut.storedAs}`);
      const cut = table.locator(`tr.failed[data-file="${CUT}"]`);
      t.equal(((await cut.locator('td.result').textContent()) ?? '').trim(), 'refused');
      t.equal(
        ((await cut.locator('td.reason').textContent()) ?? '').trim(),
        `${entry(CUT).line ? `line ${entry(CUT).line}: ` : ''}${entry(CUT).reason}`,
        'the refused file with its line and reason',
      );
      t.ok(await inViewport(cut.locator('td.reason'), size.width), 'the reason is inside the screen');

      const overflow = (await page.evaluate('document.documentElement.scrollWidth - window.innerWidth')) as number;
      t.ok(overflow <= 0, `no horizontal page scroll (overflow ${overflow}px)`);
      await page.screenshot({ path: join(ARTIFACTS, `imports-warning-${size.name}.png`), fullPage: true });
    });
  }

  await t.test('the warning is in the event log and on the Alarms page', async (t) => {
    const events = await rest<{ items: Array<{ kind: string; severity: string; source: string; message: string; data?: Record<string, unknown> }> }>(
      '/api/events?source=insight&limit=100',
    );
    const retention = events.items.filter((e) => e.kind === 'import.retention');
    t.equal(retention.length, 2, 'one event per file with a warning');
    for (const e of warned) {
      const ev = retention.find((r) => r.data?.file === e.file);
      t.ok(ev, `${e.file}: recorded`);
      t.equal(ev?.severity, 'warning');
      t.equal(ev?.message, `${e.file} imported: ${e.warning}`, 'the history’s sentence, naming the file');
      t.equal(ev?.data?.storedAs, e.storedAs);
    }
    await page.setViewportSize({ width: SIZES[0].width, height: SIZES[0].height });
    await page.goto(`${site.url}/#/alarms`);
    await page.locator('table.events td.event', { hasText: `${OLD_UMLAUT} imported:` }).waitFor({ timeout: 10_000 });
    t.pass('listed in the Alarms page’s event log');
  });

  await t.test('it is true: the retention pass deletes the old readings and keeps the fresh ones', async (t) => {
    const ids = site.gateway.registry
      .list()
      .filter((d) => d.adapter === 'insight')
      .map((d) => d.id);
    t.equal(ids.length, 3);
    const store = site.gateway.store as LevelStore;
    const before = await store.storedPoints(ids[0]!);
    t.equal(before.points, 12, 'three files × 4 rows stored');
    await site.gateway.retention!.run();
    for (const id of ids) {
      const after = await store.storedPoints(id);
      t.equal(after.points, 4, `${id}: only the fresh export's readings are left`);
      t.ok(after.oldest! >= Date.now() - RAW_DAYS * DAY, 'none older than the retention');
    }
  });

  t.same(problems, [], 'no script errors or CSP violations in the console');
});
