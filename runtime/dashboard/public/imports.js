// Imports: the BMS file sources (adapters/bms-files). Their status (outpost/adapter/<id>/status,
// GET /api/adapters) gives the durable counters, the last imported and the last refused file
// and the queue, live. The history table comes from the adapter's durable history,
// GET /api/imports/<id>?limit=50 (newest first), fetched again whenever the status says a
// file was imported or refused. Should the route be unavailable (an older gateway), the table
// falls back to what the status reported while this tab was open.
// An imported file that brought readings older than its datapoints' raw retention carries a
// `warning` in the history (adapters/bms-files/process-file.ts, storage/retention.ts
// RetentionCheck): the next retention pass deletes those readings while the row says
// "imported", so the row is marked, the sentence shown, and a line above the table counts them.
import { get } from './api.js';
import { h, formatTime, flash } from './dom.js';
import { onStatus } from './live.js';
import { card, kv, setText, formatBytes } from './widgets.js';

const HISTORY_MAX = 100;
/** Column headings; on a phone each cell is labelled with its heading instead (style.css, imports). */
const HISTORY_COLUMNS = ['When', 'File', 'Result', 'Rows / points', 'Reason or warning'];
/** Rows asked from the history route (the route allows up to 500). */
const HISTORY_LIMIT = 50;
/** adapter id → entries (newest first), kept across page visits within the tab. */
const histories = new Map();

/** Adds the status's last import / last failure to the adapter's history (once each). */
function remember(id, info) {
  if (!histories.has(id)) histories.set(id, []);
  const list = histories.get(id);
  const add = (entry) => {
    if (list.some((e) => e.at === entry.at && e.file === entry.file && e.ok === entry.ok)) return false;
    list.push(entry);
    list.sort((a, b) => b.at - a.at);
    if (list.length > HISTORY_MAX) list.length = HISTORY_MAX;
    return true;
  };
  let changed = false;
  if (info?.lastImport) changed = add({ ok: true, ...info.lastImport }) || changed;
  if (info?.lastFailure) changed = add({ ok: false, ...info.lastFailure }) || changed;
  return changed;
}

/** The file name as the operator dropped it (uploads get a unique `<ms>-<hex>-` prefix in the spool). */
const displayName = (file) =>
  String(file)
    .split(/[/\\]/)
    .pop()
    .replace(/^\d{10,}-[0-9a-f]{8}-/, '');

export async function imports(main, _arg, { track }) {
  main.append(h('h1', {}, 'Imports'));
  const adapters = await get('/api/adapters');
  const sources = adapters.items.filter((a) => a.type === 'bms-files');
  if (!sources.length) {
    main.append(
      card(
        'No file imports on this gateway',
        h('p', { class: 'muted' }, 'Add a bms-files adapter (Siemens Insight or ALC WebCTRL trend exports) with a drop folder or an upload route.'),
      ),
    );
    return;
  }
  for (const a of sources) main.append(sourceSection(a, track));
}

function sourceSection(a, track) {
  const info = a.info ?? {};
  remember(a.id, info);
  const state = h('span', { class: `state state-${a.state}` });
  const counters = {};
  const counter = (k) => (counters[k] = h('span', { class: 'num' }));
  const queue = h('span', { class: 'num' });
  const importing = h('span', {});
  const lastFailure = h('div', { class: 'last-failure', role: 'status', 'aria-live': 'polite' });
  const unmapped = h('p', { class: 'muted' });
  const body = h('tbody');
  const historyNote = h('p', { class: 'muted', role: 'status' });
  const retentionSummary = h('p', { class: 'import-retention-summary', role: 'status', hidden: true });
  /** Entries from the route (newest first), or undefined while it has not answered. */
  let routeItems;
  let loading = false;
  let again = false;
  let seenFiles;
  const loadHistory = async () => {
    // One request at a time; a status change during it asks for one more afterwards.
    if (loading) return void (again = true);
    loading = true;
    try {
      const res = await get(`/api/imports/${encodeURIComponent(a.id)}?limit=${HISTORY_LIMIT}`);
      routeItems = res.items.map((e) => ({ ...e, ok: e.status === 'imported' }));
      setText(historyNote, res.total > routeItems.length ? `Newest ${routeItems.length} of ${res.total} kept.` : '');
    } catch (err) {
      routeItems = undefined;
      setText(historyNote, `Import history unavailable (${err.message}); showing what this page has seen.`);
    } finally {
      loading = false;
    }
    renderHistory();
    if (again) {
      again = false;
      loadHistory();
    }
  };
  const renderHistory = () => {
    const list = routeItems ?? histories.get(a.id) ?? [];
    body.replaceChildren(...list.map(historyRow));
    if (!list.length) body.append(h('tr', {}, h('td', { colspan: '5', class: 'muted' }, 'No file imported yet.')));
    const summary = retentionSummaryText(list);
    setText(retentionSummary, summary);
    retentionSummary.hidden = !summary;
  };
  const render = (status) => {
    const i = status.info ?? {};
    setText(state, status.state);
    state.className = `state state-${status.state}${status.degraded ? ' state-degraded' : ''}`;
    for (const k of ['files', 'rows', 'points', 'gaps', 'failures']) if (setText(counters[k], (i[k] ?? 0).toLocaleString())) flash(counters[k]);
    setText(queue, `${i.queued ?? 0} waiting`);
    setText(importing, i.importing ? displayName(typeof i.importing === 'object' ? (i.importing.file ?? JSON.stringify(i.importing)) : i.importing) : 'idle');
    if (i.lastFailure) {
      lastFailure.className = `last-failure${status.degraded ? ' bad' : ''}`;
      lastFailure.replaceChildren(
        h('strong', {}, status.degraded ? 'The most recent file was refused: ' : 'Last refused file: '),
        h('span', { class: 'mono' }, displayName(i.lastFailure.file)),
        h('span', {}, ` at ${formatTime(i.lastFailure.at)}: `),
        h('span', { class: 'reason' }, i.lastFailure.reason),
      );
    } else lastFailure.replaceChildren(h('span', { class: 'muted' }, 'No file has been refused.'));
    const extra = [
      ...(i.unmappedPoints?.length ? [`Unmapped points: ${i.unmappedPoints.join(', ')}`] : []),
      ...(i.pointErrors?.length ? [`Point errors: ${i.pointErrors.map((p) => (typeof p === 'string' ? p : JSON.stringify(p))).join(', ')}`] : []),
      ...(i.dstSkippedRows ? [`${i.dstSkippedRows} rows skipped in the spring DST gap`] : []),
    ];
    setText(unmapped, extra.join(' · '));
    // A file was imported or refused since the last look: the durable history has a new row.
    const files = `${i.files ?? 0}/${i.failures ?? 0}`;
    if (files !== seenFiles) {
      seenFiles = files;
      loadHistory();
    } else if (!routeItems) renderHistory();
  };
  for (const k of ['files', 'rows', 'points', 'gaps', 'failures']) counter(k);
  track(
    onStatus((id, msg) => {
      if (id !== a.id) return;
      remember(a.id, msg.info);
      render(msg);
    }),
  );
  const source =
    [info.dropDir ? `drop folder ${info.dropDir}` : '', info.uploadPath ? `upload POST ${info.uploadPath}` : ''].filter(Boolean).join(' · ') || '—';
  const section = h(
    'section',
    { class: 'source', 'aria-labelledby': `src-${a.id}`, dataset: { source: a.id } },
    h('h2', { id: `src-${a.id}` }, `${a.id} `, h('span', { class: 'muted' }, info.format ?? '')),
    h(
      'div',
      { class: 'grid' },
      card(
        'Source',
        kv([
          ['adapter', state],
          ['from', source],
          ['time zone', info.timezone ?? '—'],
          ['queue', queue],
          ['now', importing],
        ]),
      ),
      card(
        'Counted',
        kv([
          ['files', counters.files],
          ['rows', counters.rows],
          ['points', counters.points],
          ['gaps', counters.gaps],
          ['refused files', counters.failures],
        ]),
      ),
    ),
    card('Last refusal', lastFailure, unmapped),
    card(
      'History',
      retentionSummary,
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'imports', id: `history-${a.id}` },
          h('caption', {}, `Imported and refused files, newest first (up to ${HISTORY_LIMIT})`),
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              HISTORY_COLUMNS.map((c) => h('th', { scope: 'col' }, c)),
            ),
          ),
          body,
        ),
      ),
      historyNote,
    ),
  );
  render(a);
  return section;
}

/**
 * The line above the history table when files of the list brought readings the next retention
 * pass deletes; '' when none did. A `storage.retention.rules` pattern wins over the adapter's
 * `retentionRawDays` (storage/retention.ts), so the advice names it when a warning does.
 */
function retentionSummaryText(list) {
  const warned = list.filter((e) => e.ok && e.warning);
  if (!warned.length) return '';
  const n = warned.length;
  const rule = warned.some((e) => e.warning.includes('storage.retention.rules')) ? ' (or the storage.retention.rules pattern named)' : '';
  return `${n} ${n === 1 ? 'file' : 'files'} brought readings older than the raw retention; they will be deleted at the next retention pass — set retentionRawDays on the adapter${rule}`;
}

/**
 * One history row: time, the file as the operator named it (and the name it has on disk, in
 * archive/ or failed/, when that differs), result, what was stored, and for a refused file the
 * line and reason, for an imported one its retention warning. Cells carry their heading in
 * `data-label` for the phone layout.
 */
function historyRow(e) {
  const name = displayName(e.file);
  const counts =
    e.rows === undefined ? '' : `${e.rows.toLocaleString()} rows, ${e.points.toLocaleString()} points${e.gaps ? `, ${e.gaps.toLocaleString()} gaps` : ''}`;
  const details = [
    e.datapoints ? `${e.datapoints} datapoints` : '',
    e.size !== undefined ? formatBytes(e.size) : '',
    e.ms !== undefined ? `${e.ms.toLocaleString()} ms` : '',
  ]
    .filter(Boolean)
    .join(' · ');
  const warning = e.ok && e.warning ? e.warning : '';
  // Uploads are stored as `<ms>-<hex>-<name>`: only a name that says more than that prefix is shown.
  const storedAs = e.storedAs && e.storedAs !== name && !e.storedAs.endsWith(`-${name}`) ? e.storedAs : '';
  const [when, file, result, rows, reason] = HISTORY_COLUMNS;
  return h(
    'tr',
    { class: `${e.ok ? 'ok' : 'failed'}${warning ? ' warned' : ''}`, dataset: { file: name } },
    h('td', { class: 'time', 'data-label': when }, formatTime(e.at)),
    h(
      'th',
      { scope: 'row', class: 'mono', 'data-label': file },
      name,
      storedAs ? h('span', { class: 'muted stored-as' }, `${e.ok ? 'archived' : 'kept in failed/'} as ${storedAs}`) : null,
    ),
    h(
      'td',
      { class: 'result', 'data-label': result },
      h('span', { class: `state state-${e.ok ? 'ok' : 'error'}` }, e.ok ? 'imported' : 'refused'),
      // Words, not only the sign: the marker is read out and understood without colour.
      warning ? h('span', { class: 'import-warning-mark' }, h('span', { 'aria-hidden': 'true' }, '⚠ '), 'past retention') : null,
    ),
    h('td', { class: 'counts', 'data-label': rows }, counts, details ? h('span', { class: 'muted' }, ` (${details})`) : null),
    h(
      'td',
      { class: 'reason', 'data-label': reason },
      e.ok ? null : `${e.line ? `line ${e.line}: ` : ''}${e.reason ?? ''}`,
      warning ? h('p', { class: 'import-warning', role: 'note' }, h('span', { class: 'import-warning-text' }, warning)) : null,
    ),
  );
}
