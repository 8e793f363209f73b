// The Overview's power-flow picture: sources on the left (PV, grid, batteries), the house in
// the middle, consumers on the right (each charger, named loads, other loads), with animated
// lines in the direction power flows. Built from GET /api/site/flow and kept live from the
// role datapoints' readings (runtime/site/flow.ts has the server side of the same formula).
import { h } from './dom.js';

/** Below this many watts a line stands still and says "idle" (meter noise, PV standby at night). */
export const IDLE_W = 10;

/**
 * The power balance of the nodes: THE formula on the browser side, the twin of `balanceOf`
 * in runtime/site/flow.ts (test/runtime/site/flow.test.ts checks both give the same answer).
 * House consumption = grid + pv + battery; other loads = consumption − chargers − named
 * loads, never negative (`otherNegative` and `excessW` say when the consumers add up to more).
 */
export function balanceOf(nodes) {
  const sum = { grid: 0, pv: 0, battery: 0, load: 0, charger: 0 };
  let missing = 0;
  for (const n of nodes) {
    if (n.w === null) missing++;
    else sum[n.role] += n.w;
  }
  const consumption = sum.grid + sum.pv + sum.battery;
  const other = consumption - sum.charger - sum.load;
  return {
    gridW: Math.round(sum.grid),
    pvW: Math.round(sum.pv),
    batteryW: Math.round(sum.battery),
    chargersW: Math.round(sum.charger),
    loadsW: Math.round(sum.load),
    otherW: Math.max(0, Math.round(other)),
    consumptionW: Math.round(consumption),
    otherNegative: Math.round(other) < 0,
    excessW: Math.max(0, -Math.round(other)),
    missing,
  };
}

/** Watts for the picture: `850 W`, `3.2 kW`, `12.3 kW`, `140 kW` (number and unit apart, for two lines). */
export function formatPower(w) {
  if (w === null || w === undefined) return { num: '—', unit: '' };
  const abs = Math.abs(w);
  if (abs < 999.5) return { num: Math.round(w).toLocaleString(), unit: 'W' };
  const digits = abs < 99_950 ? 1 : 0;
  return { num: (w / 1000).toLocaleString(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits }), unit: 'kW' };
}

/** What the direction of a role's power is called: the grid imports or exports, a battery charges or discharges. */
export function directionOf(role, w) {
  if (w === null) return 'no reading';
  if (Math.abs(w) < IDLE_W) return 'idle';
  switch (role) {
    case 'grid':
      return w > 0 ? 'import' : 'export';
    case 'battery':
      return w > 0 ? 'discharging' : 'charging';
    case 'pv':
      return w > 0 ? 'producing' : 'drawing';
    case 'charger':
      return w > 0 ? 'charging' : 'feeding back';
    default:
      return w > 0 ? 'in use' : 'feeding back';
  }
}

const NS = 'http://www.w3.org/2000/svg';
/** SVG elements as dom.js `h` builds HTML ones: attributes set one by one, text as textContent. */
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null && v !== false) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== undefined && c !== null) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

// Geometry in viewBox units: three columns, one slot per node. 400 units wide, so a 390 px
// phone draws the figures at ~18 px and a desktop card (max 600 px) at ~30 px.
const WIDTH = 400;
const R = 44;
const X = { left: 52, middle: 200, right: 348 };
const SLOT = 150;
const PAD = 6;
/** Labels longer than this are cut with an ellipsis on the picture (full in its tooltip and the list beside it): 12 characters of 14 units fit above a side column's circle inside the 400 units. */
const MAX_LABEL = 12;
const SOURCE_ORDER = { pv: 0, grid: 1, battery: 2 };
const CONSUMER_ORDER = { charger: 0, load: 1 };

const cut = (text, max = MAX_LABEL) => (text.length > max ? text.slice(0, max - 1) + '…' : text);
const ago = (ms) => (ms < 120_000 ? `${Math.round(ms / 1000)} s` : ms < 7_200_000 ? `${Math.round(ms / 60_000)} min` : `${Math.round(ms / 3_600_000)} h`);

/**
 * The picture and the figures beside it for one `/api/site/flow` answer. `update(id, msg)`
 * takes a live reading of any datapoint (others are ignored) and redraws on the next frame;
 * `refresh()` re-judges staleness as time passes. Nodes (and so the layout) are fixed until
 * the page is loaded again, so a live update never moves anything.
 */
export function powerFlow(flow) {
  // Staleness is judged on the gateway's clock: the browser's may be off.
  const skew = flow.t - Date.now();
  const nodes = flow.nodes.map((n) => ({ ...n }));
  const socs = flow.socs.map((x) => ({ ...x }));
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const socById = new Map(socs.map((x) => [x.id, x]));
  const sources = nodes.filter((n) => n.role in SOURCE_ORDER).sort((a, b) => SOURCE_ORDER[a.role] - SOURCE_ORDER[b.role]);
  const consumers = nodes.filter((n) => n.role in CONSUMER_ORDER).sort((a, b) => CONSUMER_ORDER[a.role] - CONSUMER_ORDER[b.role]);
  const other = { role: 'other', id: '', label: 'Other loads', w: 0, t: flow.t, stale: false };
  const house = { role: 'house', id: '', label: 'House', w: 0, t: flow.t, stale: false };
  const right = [...consumers, other];
  // As tall as the longer column (two rows at least, so a lone source and consumer still make a picture).
  const rows = Math.max(2, sources.length, right.length);
  const height = PAD * 2 + rows * SLOT;
  const yOf = (i, count) => PAD + ((rows - count) * SLOT) / 2 + i * SLOT + SLOT / 2;
  const centre = { x: X.middle, y: height / 2 };

  const lines = s('g', { class: 'flow-lines' });
  const circles = s('g', { class: 'flow-nodes' });
  const svg = s(
    'svg',
    { viewBox: `0 0 ${WIDTH} ${height}`, class: 'flow-svg', role: 'img', 'aria-labelledby': 'flow-title flow-desc' },
    s('title', { id: 'flow-title' }, 'Power flow now'),
    s('desc', { id: 'flow-desc' }, 'Sources on the left, the house in the middle, consumers on the right; every figure is also listed beside the picture.'),
    lines,
    circles,
  );
  const views = [];
  const place = (node, x, y, side) => {
    const view = drawNode(node, x, y);
    circles.append(view.g);
    if (side) {
      // Sources' lines run into the house, consumers' out of it: positive power flows forward.
      const [a, b] = side === 'in' ? [{ x, y }, centre] : [centre, { x, y }];
      view.line = drawLine(a, b, node.role);
      lines.append(view.line.g);
    }
    views.push(view);
  };
  for (const [i, n] of sources.entries()) place(n, X.left, yOf(i, sources.length), 'in');
  for (const [i, n] of right.entries()) place(n, X.right, yOf(i, right.length), 'out');
  place(house, centre.x, centre.y);

  const figures = h('dl', { class: 'kv flow-figures' });
  const note = h('p', { class: 'flow-note', role: 'status', hidden: true });
  const updated = h('p', { class: 'muted flow-updated' });
  const element = h('div', { class: 'flow' }, h('div', { class: 'flow-picture' }, svg), h('div', { class: 'flow-side' }, figures, note, updated));
  const rowsOf = new Map();
  const figure = (key, label) => {
    const dd = h('dd', { class: 'num', dataset: { figure: key } });
    figures.append(h('dt', {}, label), dd);
    rowsOf.set(key, dd);
  };
  figure('consumption', 'House consumption');
  for (const n of [...sources, ...consumers]) figure(`node:${n.id}`, n.label);
  figure('other', 'Other loads');

  let frame = 0;
  function render() {
    frame = 0;
    const now = Date.now() + skew;
    for (const n of nodes) n.stale = n.w === null || n.t === null || now - n.t > flow.staleAfterMs;
    for (const x of socs) x.stale = x.v === null || x.t === null || now - x.t > flow.staleAfterMs;
    const b = balanceOf(nodes);
    house.w = b.consumptionW;
    other.w = b.otherW;
    let newest = 0;
    for (const view of views) {
      const n = view.node;
      if (n.t && n.id) newest = Math.max(newest, n.t);
      const soc = n.role === 'battery' ? socs.find((x) => x.battery === n.id) : undefined;
      view.set(n, { now, soc, otherNegative: n === other && b.otherNegative });
    }
    for (const n of [...sources, ...consumers]) {
      const p = formatPower(n.role === 'grid' || n.role === 'battery' ? Math.abs(n.w ?? 0) : n.w);
      const soc = n.role === 'battery' ? socs.find((x) => x.battery === n.id) : undefined;
      const dir = directionOf(n.role, n.w);
      rowsOf.get(`node:${n.id}`).textContent =
        n.w === null
          ? 'no reading'
          : `${p.num} ${p.unit}${dir === 'idle' || n.role === 'pv' || n.role === 'load' ? '' : ` ${dir}`}${soc?.v != null ? ` · ${Math.round(soc.v)} %` : ''}${n.stale ? ' (stale)' : ''}`;
    }
    const c = formatPower(b.consumptionW);
    rowsOf.get('consumption').textContent = `${c.num} ${c.unit}`;
    const o = formatPower(b.otherW);
    rowsOf.get('other').textContent = `${o.num} ${o.unit}`;
    const excess = formatPower(b.excessW);
    const problems = [];
    if (b.otherNegative)
      problems.push(
        `Chargers and named loads add up to ${excess.num} ${excess.unit} more than the house consumption (grid + PV + battery): meters read at different moments, or one counts the other way round (invert in site.power).`,
      );
    for (const n of nodes) if (n.problem) problems.push(`${n.label} (${n.id}) is not added up: ${n.problem}.`);
    const unread = nodes.filter((n) => n.w === null && !n.problem).map((n) => n.label);
    if (unread.length) problems.push(`No reading from ${unread.join(', ')}: counted as 0.`);
    note.textContent = problems.join(' ');
    note.hidden = problems.length === 0;
    updated.textContent = newest ? `Newest reading ${new Date(newest).toLocaleTimeString()}` : 'No readings yet.';
  }
  const schedule = () => {
    frame ||= requestAnimationFrame(render);
  };
  render();

  return {
    element,
    /** Datapoints whose readings change the picture. */
    ids: new Set([...byId.keys(), ...socById.keys()]),
    update(id, msg) {
      const n = byId.get(id);
      const soc = socById.get(id);
      if (!n && !soc) return false;
      const v = !msg.q && typeof msg.v === 'number' && Number.isFinite(msg.v) ? msg.v : null;
      if (n && !n.problem) Object.assign(n, { w: v === null ? null : v * n.scale + 0, t: msg.t });
      if (soc) Object.assign(soc, { v, t: msg.t });
      schedule();
      return true;
    },
    refresh: schedule,
    destroy() {
      if (frame) cancelAnimationFrame(frame);
    },
  };
}

/** A line with a moving dash and an arrow at its middle; `set(w)` points both the way power flows. */
function drawLine(a, b, role) {
  const len = Math.hypot(b.x - a.x, b.y - a.y);
  const ux = (b.x - a.x) / len;
  const uy = (b.y - a.y) / len;
  // The visible part, between the two circles.
  const p = { x: a.x + ux * R, y: a.y + uy * R };
  const q = { x: b.x - ux * R, y: b.y - uy * R };
  const path = s('path', { d: `M ${p.x.toFixed(1)} ${p.y.toFixed(1)} L ${q.x.toFixed(1)} ${q.y.toFixed(1)}`, class: 'flow-line' });
  const mid = { x: (p.x + q.x) / 2, y: (p.y + q.y) / 2 };
  const angle = (Math.atan2(uy, ux) * 180) / Math.PI;
  const arrow = s('path', { d: 'M -7 -6 L 7 0 L -7 6 Z', class: 'flow-arrow' });
  const g = s('g', { class: `flow-link r-${role}` }, path, arrow);
  return {
    g,
    set(w, stale) {
      const on = w !== null && Math.abs(w) >= IDLE_W;
      g.classList.toggle('on', on);
      g.classList.toggle('rev', on && w < 0);
      g.classList.toggle('stale', stale);
      arrow.setAttribute('transform', `translate(${mid.x.toFixed(1)} ${mid.y.toFixed(1)}) rotate(${(angle + (on && w < 0 ? 180 : 0)).toFixed(1)})`);
    },
  };
}

/** One node: label above, the figure in the circle, the direction (or how old the reading is) below. */
function drawNode(node, x, y) {
  const label = s('text', { x, y: y - R - 10, class: 'flow-label' });
  const num = s('text', { x, y: y + 4, class: 'flow-num' });
  const unit = s('text', { x, y: y + 24, class: 'flow-unit' });
  const dir = s('text', { x, y: y + R + 20, class: 'flow-dir' });
  const ring = s('circle', { cx: x, cy: y, r: R, class: 'flow-circle' });
  const soc = s('circle', { cx: x, cy: y, r: R + 5, class: 'flow-soc', pathLength: 100, transform: `rotate(-90 ${x} ${y})` });
  const title = s('title', {});
  const g = s('g', { class: `flow-node r-${node.role}`, 'data-role': node.role, 'data-id': node.id || undefined }, title, ring, soc, label, num, unit, dir);
  const view = { node, g, line: undefined };
  view.set = (n, { now, soc: battery, otherNegative }) => {
    const shown = n.role === 'grid' || n.role === 'battery' ? (n.w === null ? null : Math.abs(n.w)) : n.w;
    const p = formatPower(shown);
    const direction = n.role === 'house' ? 'consumption' : n.role === 'other' ? (otherNegative ? 'meters disagree' : 'rest of site') : directionOf(n.role, n.w);
    const pct = battery && battery.v !== null ? Math.max(0, Math.min(100, battery.v)) : undefined;
    // The SoC takes up to 5 characters of the label's room.
    label.textContent = pct !== undefined ? `${cut(n.label, MAX_LABEL - 5)} ${Math.round(pct)} %` : cut(n.label);
    num.textContent = p.num;
    unit.textContent = p.unit;
    dir.textContent = n.stale && n.id ? (n.t ? `no reading for ${ago(now - n.t)}` : 'no reading') : direction;
    title.textContent = `${n.label}${n.id ? ` (${n.id})` : ''}: ${p.num} ${p.unit} ${direction}`;
    g.setAttribute('data-w', n.w === null ? '' : String(n.w));
    g.setAttribute('data-direction', direction);
    g.classList.toggle('stale', Boolean(n.stale && n.id));
    g.classList.toggle('warn', Boolean(otherNegative));
    soc.classList.toggle('shown', pct !== undefined);
    if (pct !== undefined) soc.setAttribute('stroke-dasharray', `${pct.toFixed(1)} 100`);
    view.line?.set(n.w, Boolean(n.stale && n.id));
  };
  return view;
}
