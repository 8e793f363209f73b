// Links: the upstream sync (runtime/sync, GET /api/sync: its snapshot of backlog, rates
// and per-link state) and the Iridium modems (adapters/iridium: <id>.signal,
// <id>.link_state, <id>.credits_today / _month, <id>.queue, <id>.last_mo_status, <id>.mt_credits_today,
// <id>.ring_alerts / <id>.rings_deferred: a ring flood from whoever knows the IMEI, live).
// Every figure sits in a fixed slot and is updated in place: a refresh moves nothing.
import { get } from './api.js';
import { h, formatValue, formatTime, formatDuration, flash } from './dom.js';
import { onValue, onStatus } from './live.js';
import { card, kv, every, setText, formatBytes } from './widgets.js';

const REFRESH_MS = 5000;

const rate = (r) => (r === null || r === undefined ? '—' : `${r.toLocaleString(undefined, { maximumFractionDigits: r < 10 ? 1 : 0 })} records/s`);

export async function links(main, _arg, { track }) {
  main.append(h('h1', {}, 'Links'));
  const [first, adapters, dps] = await Promise.all([get('/api/sync'), get('/api/adapters'), get('/api/datapoints')]);
  const syncBox = h('div', { id: 'sync' });
  main.append(syncBox);
  if (!first.enabled)
    syncBox.append(card('Upstream sync', h('p', { class: 'muted' }, 'Upstream sync is off on this gateway (sync.enabled: false): readings stay here.')));
  else await syncPanel(syncBox, first, track);

  const iridium = adapters.items.filter((a) => a.type === 'iridium');
  main.append(h('h2', { class: 'section' }, 'Satellite (Iridium)'));
  if (!iridium.length) main.append(h('p', { class: 'muted' }, 'No Iridium modem on this gateway.'));
  else
    main.append(
      h(
        'div',
        { class: 'grid' },
        iridium.map((a) => iridiumCard(a, dps.items, track)),
      ),
    );
}

async function syncPanel(box, first, track) {
  const field = (id) => h('span', { class: 'num', id });
  const f = {
    mode: h('span', { class: 'state', id: 'sync-mode' }),
    active: field('sync-active'),
    records: h('p', { class: 'big num', id: 'sync-backlog' }),
    bytes: field('sync-bytes'),
    oldest: field('sync-oldest'),
    drain: field('sync-drain'),
    ingest: field('sync-ingest'),
    catchUp: field('sync-catchup'),
    acked: field('sync-acked'),
    downlink: field('sync-downlink'),
    deadCount: h('p', { class: 'big num', id: 'sync-dead-letters' }),
  };
  const linkBody = h('tbody');
  const deadBody = h('tbody');
  box.append(
    h(
      'div',
      { class: 'grid' },
      card(
        'Upstream',
        kv([
          ['mode', f.mode],
          ['carrying', f.active],
          ['acknowledged up to', f.acked],
          ['downlink', f.downlink],
        ]),
      ),
      card(
        'Backlog',
        f.records,
        kv([
          ['size', f.bytes],
          ['oldest unsent', f.oldest],
        ]),
      ),
      card(
        'Rates',
        kv([
          ['drain', f.drain],
          ['ingest', f.ingest],
          ['caught up in', f.catchUp],
        ]),
      ),
    ),
    card(
      'Links',
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { id: 'sync-links' },
          h('caption', {}, 'In the order they are tried; the first primary that is up carries the history'),
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ['Link', 'Role', 'State', 'Since', 'Batches', 'Records', 'Bytes', 'Errors', 'Last error'].map((c, i) =>
                h('th', { scope: 'col', class: i >= 4 && i <= 7 ? 'num' : undefined }, c),
              ),
            ),
          ),
          linkBody,
        ),
      ),
    ),
    card(
      'Dead letters',
      f.deadCount,
      h(
        'p',
        { class: 'muted' },
        'Records the receiver refused for good (an HTTP 4xx for that record alone). They were set aside so the rest could go on, and are kept in sync/dead-letter.jsonl in the data directory; the newest are listed here.',
      ),
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { id: 'sync-dead-letters-table' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ['When', 'Link', 'Seq', 'Datapoint', 'Value', 'Reason', 'Receiver said'].map((c) => h('th', { scope: 'col' }, c)),
            ),
          ),
          deadBody,
        ),
      ),
    ),
  );
  let deadShown = '';
  const rows = new Map();
  const render = (s) => {
    // The service stays in `primary` mode while it retries a primary link that is down:
    // say so, rather than showing a green "primary" over a link that carries nothing.
    const active = s.links.find((l) => l.name === s.activeLink);
    const retrying = s.mode === 'primary' && active && active.state !== 'up';
    setText(f.mode, retrying ? `${s.mode}, ${active.state === 'blocked' ? 'blocked' : 'retrying'}` : s.mode);
    f.mode.className = `state state-${retrying ? 'down' : s.mode}`;
    setText(f.active, s.activeLink ? `${s.activeLink} (${active?.state ?? '?'})` : 'none');
    setText(f.acked, `#${s.acked.toLocaleString()} of #${s.lastSeq.toLocaleString()}`);
    setText(f.downlink, `${s.downlink.ok} applied, ${s.downlink.refused} refused`);
    if (setText(f.records, `${s.backlogRecords.toLocaleString()} records`)) flash(f.records);
    // Bytes are estimated from batches sent lately: unknown before the first one.
    setText(f.bytes, s.backlogRecords && !s.backlogBytes ? 'not known until a batch is sent' : `≈ ${formatBytes(s.backlogBytes)}`);
    setText(f.oldest, s.backlogRecords ? formatDuration(s.oldestUnsentAgeSeconds) : 'nothing waiting');
    setText(f.drain, rate(s.drainRate));
    setText(f.ingest, rate(s.ingestRate));
    setText(f.catchUp, s.catchUpSeconds === null ? 'not converging (ingest ≥ drain)' : s.catchUpSeconds === 0 ? 'caught up' : formatDuration(s.catchUpSeconds));
    for (const l of s.links) {
      let r = rows.get(l.name);
      if (!r) {
        r = {
          state: h('span'),
          since: h('td', { class: 'time' }),
          batches: h('td', { class: 'num' }),
          records: h('td', { class: 'num' }),
          bytes: h('td', { class: 'num' }),
          errors: h('td', { class: 'num' }),
          lastError: h('td', { class: 'last-error' }),
        };
        rows.set(l.name, r);
        linkBody.append(
          h(
            'tr',
            { dataset: { link: l.name } },
            h('th', { scope: 'row' }, l.name),
            h('td', {}, l.role),
            h('td', {}, r.state),
            r.since,
            r.batches,
            r.records,
            r.bytes,
            r.errors,
            r.lastError,
          ),
        );
      }
      setText(r.state, l.state);
      // Blocked: reachable, but refusing records; as bad as down for what gets through.
      r.state.className = l.state === 'blocked' ? 'state state-down state-blocked' : `state state-${l.state}`;
      setText(r.since, formatTime(l.since));
      setText(r.batches, l.batches.toLocaleString());
      setText(r.records, l.records.toLocaleString());
      setText(r.bytes, formatBytes(l.bytes));
      setText(r.errors, l.errors.toLocaleString());
      setText(
        r.lastError,
        l.lastError ? (typeof l.lastError === 'string' ? l.lastError : `${l.lastError.code ?? ''} ${l.lastError.message ?? ''}`.trim()) : '—',
      );
    }
    const dead = s.deadLetters ?? { count: 0, total: 0, newest: [] };
    const records = (n) => `${n.toLocaleString()} record${n === 1 ? '' : 's'}`;
    if (
      setText(f.deadCount, dead.total === dead.count ? records(dead.count) : `${records(dead.count)} kept (${dead.total.toLocaleString()} in all)`) &&
      dead.count
    )
      flash(f.deadCount);
    // Rebuilt only when the newest entry changes: the list is append-only.
    const key = `${dead.total}`;
    if (key !== deadShown) {
      deadShown = key;
      deadBody.replaceChildren(
        ...(dead.newest.length
          ? dead.newest.map((d) =>
              h(
                'tr',
                { dataset: { seq: String(d.record.seq) } },
                h('td', { class: 'time' }, formatTime(d.at)),
                h('td', {}, d.link),
                h('td', { class: 'num' }, `#${d.record.seq}`),
                h('td', {}, d.record.id),
                h('td', {}, JSON.stringify(d.record.v)),
                h('td', {}, d.reason),
                h('td', { class: 'last-error' }, d.answer ?? '—'),
              ),
            )
          : [h('tr', {}, h('td', { colspan: '7', class: 'muted' }, 'None: every record the receiver was sent, it took.'))]),
      );
    }
  };
  render(first);
  let skip = true;
  await every(
    REFRESH_MS,
    async () => {
      if (skip) {
        skip = false;
        return;
      }
      render(await get('/api/sync'));
    },
    { track, onError: (err) => setText(f.active, `unavailable: ${err.message}`) },
  );
}

/** Signal bars 0..5 as a meter (accessible: role meter with a value text). */
function signalMeter(bars) {
  const el = h(
    'span',
    { class: 'sigbars', role: 'meter', 'aria-valuemin': '0', 'aria-valuemax': '5', 'aria-label': 'Signal' },
    [1, 2, 3, 4, 5].map((i) => h('span', { class: `bar b${i}`, 'aria-hidden': 'true' })),
  );
  const text = h('span', { class: 'num' });
  const set = (v) => {
    const n = typeof v === 'number' ? Math.max(0, Math.min(5, Math.round(v))) : undefined;
    el.setAttribute('aria-valuenow', String(n ?? 0));
    el.setAttribute('aria-valuetext', n === undefined ? 'unknown' : `${n} of 5 bars`);
    el.querySelectorAll('.bar').forEach((b, i) => {
      b.classList.toggle('on', n !== undefined && i < n);
    });
    setText(text, n === undefined ? '—' : `${n} / 5`);
  };
  set(bars);
  return { el: h('span', { class: 'signal' }, el, text), set };
}

function iridiumCard(a, items, track) {
  const mine = new Map(items.filter((d) => d.adapter === a.id).map((d) => [d.id.slice(a.id.length + 1), d]));
  const latest = (q) => mine.get(q)?.latest?.v;
  const state = h('span', { class: `state state-${a.state}` }, a.state);
  const signal = signalMeter(latest('signal'));
  const slot = (q, fmt) => {
    const el = h('span', { class: 'num', dataset: { q } }, fmt(latest(q)));
    return { el, fmt };
  };
  const slots = {
    link_state: slot('link_state', (v) => v ?? '—'),
    credits_today: slot('credits_today', (v) => formatValue(v, 'credits')),
    credits_month: slot('credits_month', (v) => formatValue(v, 'credits')),
    queue: slot('queue', (v) => (v === undefined ? '—' : `${v} messages`)),
    last_mo_status: slot('last_mo_status', (v) => (v === undefined ? '—' : String(v))),
    mt_refused: slot('mt_refused', (v) => (v === undefined ? '—' : String(v))),
    mt_credits_today: slot('mt_credits_today', (v) => formatValue(v, 'credits')),
    ring_alerts: slot('ring_alerts', (v) => (v === undefined ? '—' : String(v))),
    rings_deferred: slot('rings_deferred', (v) => (v === undefined ? '—' : String(v))),
  };
  // Rings beyond the MT share: someone is queueing MT messages faster than the budget lets us fetch them.
  const flood = (v) => slots.rings_deferred.el.classList.toggle('warn', typeof v === 'number' && v > 0);
  flood(latest('rings_deferred'));
  track(
    onValue((id, msg) => {
      if (!id.startsWith(`${a.id}.`)) return;
      const q = id.slice(a.id.length + 1);
      if (q === 'signal') signal.set(msg.v);
      else if (slots[q] && setText(slots[q].el, slots[q].fmt(msg.v))) flash(slots[q].el);
      if (q === 'rings_deferred') flood(msg.v);
    }),
  );
  track(
    onStatus((id, msg) => {
      if (id !== a.id) return;
      setText(state, msg.state);
      state.className = `state state-${msg.state}`;
    }),
  );
  return card(
    a.id,
    kv([
      ['adapter', state],
      ['signal', signal.el],
      ['link', slots.link_state.el],
      ['credits today', slots.credits_today.el],
      ['credits this month', slots.credits_month.el],
      ['queued', slots.queue.el],
      ['last MO status', slots.last_mo_status.el],
      ['MT refused', slots.mt_refused.el],
      ['MT credits today', slots.mt_credits_today.el],
      ['ring alerts', slots.ring_alerts.el],
      ['rings deferred (MT share spent)', slots.rings_deferred.el],
      ...(a.info?.imei ? [['IMEI', String(a.info.imei)]] : []),
      ...(a.message ? [['note', a.message]] : []),
    ]),
  );
}
