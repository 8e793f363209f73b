// Imports: the BMS file sources (adapters/bms-files). What they expose is their status
// (outpost/adapter/<id>/status, GET /api/adapters): durable counters, the last imported
// and the last refused file with the line and reason, the queue. The history below is
// those two entries plus every file the status reported while this dashboard tab was
// open (kept for the tab's lifetime, bounded): the adapter has no history route.
import { get } from './api.js';
import { h, formatTime, flash } from './dom.js';
import { onStatus } from './live.js';
import { card, kv, setText } from './widgets.js';

const HISTORY_MAX = 100;
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
const displayName = (file) => String(file).split(/[/\\]/).pop().replace(/^\d{10,}-[0-9a-f]{8}-/, '');

export async function imports(main, _arg, { track }) {
  main.append(h('h1', {}, 'Imports'));
  const adapters = await get('/api/adapters');
  const sources = adapters.items.filter((a) => a.type === 'bms-files');
  if (!sources.length) {
    main.append(card('No file imports on this gateway', h('p', { class: 'muted' }, 'Add a bms-files adapter (Siemens Insight or ALC WebCTRL trend exports) with a drop folder or an upload route.')));
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
  const render = (status) => {
    const i = status.info ?? {};
    setText(state, status.state);
    state.className = `state state-${status.state}${status.degraded ? ' state-degraded' : ''}`;
    for (const k of ['files', 'rows', 'points', 'gaps', 'failures']) if (setText(counters[k], (i[k] ?? 0).toLocaleString())) flash(counters[k]);
    setText(queue, `${i.queued ?? 0} waiting`);
    setText(importing, i.importing ? displayName(typeof i.importing === 'object' ? i.importing.file ?? JSON.stringify(i.importing) : i.importing) : 'idle');
    if (i.lastFailure) {
      lastFailure.className = `last-failure${status.degraded ? ' bad' : ''}`;
      lastFailure.replaceChildren(
        h('strong', {}, status.degraded ? 'The most recent file was refused: ' : 'Last refused file: '),
        h('span', { class: 'mono' }, displayName(i.lastFailure.file)),
        h('span', {}, ` at ${formatTime(i.lastFailure.at)}: `),
        h('span', { class: 'reason' }, i.lastFailure.reason),
      );
    } else lastFailure.replaceChildren(h('span', { class: 'muted' }, 'No file has been refused.'));
    const extra = [...(i.unmappedPoints?.length ? [`Unmapped points: ${i.unmappedPoints.join(', ')}`] : []), ...(i.pointErrors?.length ? [`Point errors: ${i.pointErrors.map((p) => (typeof p === 'string' ? p : JSON.stringify(p))).join(', ')}`] : []), ...(i.dstSkippedRows ? [`${i.dstSkippedRows} rows skipped in the spring DST gap`] : [])];
    setText(unmapped, extra.join(' · '));
    const list = histories.get(a.id) ?? [];
    body.replaceChildren(
      ...list.map((e) =>
        h(
          'tr',
          { class: e.ok ? 'ok' : 'failed', dataset: { file: displayName(e.file) } },
          h('td', { class: 'time' }, formatTime(e.at)),
          h('th', { scope: 'row', class: 'mono' }, displayName(e.file)),
          h('td', {}, h('span', { class: `state state-${e.ok ? 'ok' : 'error'}` }, e.ok ? 'imported' : 'refused')),
          h('td', {}, e.ok ? `${e.rows.toLocaleString()} rows, ${e.points.toLocaleString()} points${e.gaps ? `, ${e.gaps} gaps` : ''} in ${e.ms} ms` : e.reason),
        ),
      ),
    );
    if (!list.length) body.append(h('tr', {}, h('td', { colspan: '4', class: 'muted' }, 'No file imported yet.')));
  };
  for (const k of ['files', 'rows', 'points', 'gaps', 'failures']) counter(k);
  track(onStatus((id, msg) => {
    if (id !== a.id) return;
    remember(a.id, msg.info);
    render(msg);
  }));
  const source = [info.dropDir ? `drop folder ${info.dropDir}` : '', info.uploadPath ? `upload POST ${info.uploadPath}` : ''].filter(Boolean).join(' · ') || '—';
  const section = h(
    'section',
    { class: 'source', 'aria-labelledby': `src-${a.id}`, dataset: { source: a.id } },
    h('h2', { id: `src-${a.id}` }, `${a.id} `, h('span', { class: 'muted' }, info.format ?? '')),
    h(
      'div',
      { class: 'grid' },
      card('Source', kv([['adapter', state], ['from', source], ['time zone', info.timezone ?? '—'], ['queue', queue], ['now', importing]])),
      card('Counted', kv([['files', counters.files], ['rows', counters.rows], ['points', counters.points], ['gaps', counters.gaps], ['refused files', counters.failures]])),
    ),
    card('Last refusal', lastFailure, unmapped),
    card(
      'History',
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'imports', id: `history-${a.id}` },
          h('caption', {}, 'Last imported and last refused file, plus every file seen while this page was open; newest first'),
          h('thead', {}, h('tr', {}, ['When', 'File', 'Result', 'Details'].map((c) => h('th', { scope: 'col' }, c)))),
          body,
        ),
      ),
    ),
  );
  render(a);
  return section;
}
