// uPlot wrapper: one series over time, sized to its container, resized with it.
import uPlot from '/ui/vendor/uPlot.esm.js';

/**
 * The time axis. uPlot's own autoscale puts a single point at the start of a span of
 * 86,400 / 1e-3 s (about 1,000 days: the 2027–2029 axis), so with `range` ({ from, to },
 * epoch ms) the axis spans the selected range, growing with live points past `to`; without
 * it, a single point gets an hour either side. A zoom (drag) is kept as asked. `exact`: the
 * axis is the range and nothing else (a custom range: a rollup bucket starting before it, or
 * a reading after it, is cut at the edge).
 */
export function xRange(range, { exact = false } = {}) {
  return (u, min, max) => {
    const xs = u.data?.[0] ?? [];
    const first = xs[0];
    const last = xs[xs.length - 1];
    const autoscaled = !xs.length || min === null || (min === first && (max === last || first === last));
    if (!autoscaled) return [min, max];
    if (range && exact) return [range.from / 1000, range.to / 1000];
    if (range) return [Math.min(range.from / 1000, first ?? Infinity), Math.max(range.to / 1000, last ?? -Infinity)];
    if (!xs.length) {
      const now = Date.now() / 1000;
      return [now - 3600, now];
    }
    return first === last ? [first - 3600, last + 3600] : [first, last];
  };
}

export function lineChart(container, { label, unit, points, range, height = 260 }) {
  container.replaceChildren();
  const xs = points.map((p) => p.t / 1000);
  const ys = points.map((p) => (typeof p.v === 'boolean' ? Number(p.v) : typeof p.v === 'number' ? p.v : null));
  const width = Math.max(240, container.clientWidth || 600);
  const opts = {
    width,
    height,
    scales: { x: { time: true, range: xRange(range) } },
    series: [{}, { label: unit ? `${label} (${unit})` : label, stroke: '#1f6feb', width: 1.5, fill: 'rgba(31,111,235,0.08)', spanGaps: false }],
    axes: [{}, { size: 60 }],
    legend: { live: true },
  };
  const plot = new uPlot(opts, [xs, ys], container);
  const ro = new ResizeObserver(() => plot.setSize({ width: Math.max(240, container.clientWidth), height }));
  ro.observe(container);
  return {
    plot,
    /** Appends a live point, keeping the time window. */
    push(t, v) {
      const d = plot.data;
      const x = [...d[0], t / 1000];
      const y = [...d[1], typeof v === 'number' ? v : typeof v === 'boolean' ? Number(v) : null];
      plot.setData([x, y]);
    },
    destroy() {
      ro.disconnect();
      plot.destroy();
    },
  };
}

/**
 * Colours of overlaid series, in order: the dashboard's blue first, then Okabe–Ito colours
 * (told apart with the common colour-vision deficiencies, readable on light and dark cards).
 */
export const SERIES_COLOURS = ['#1f6feb', '#d55e00', '#009e73', '#cc79a7', '#e69f00', '#56b4e9'];

const numberOf = (v) => (typeof v === 'boolean' ? Number(v) : typeof v === 'number' ? v : null);
const alpha = (hex, a) => `rgba(${parseInt(hex.slice(1, 3), 16)},${parseInt(hex.slice(3, 5), 16)},${parseInt(hex.slice(5, 7), 16)},${a})`;
/** Index of the first element of the ascending `xs` not below `x`. */
function lowerBound(xs, x) {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Several series over one time axis. `series`: [{ label, unit, colour, axis: 'left' |
 * 'right', points: [{t, v}], band?: { min: [{t, v}], max: [{t, v}] } }]: each series on the
 * y scale of its axis (two units at most: left `y`, right `y2`); a band is drawn as a filled
 * area between its max and min edges behind the line (uPlot `bands`). Series are aligned on
 * the union of their timestamps with uPlot.join: where a series has no reading the value is
 * undefined, which uPlot spans (the line joins its own readings, as a single series does);
 * null (a text reading) stays a gap. `range`: the time axis, exactly (a custom range); with
 * `slideMs` as for lineChart, and live points move the window along (a preset ending now),
 * dropping what falls out of it, so an open page stays bounded. uPlot's data: [x, series 1 … n, then max and min of each band], so
 * `plot.data[1]` is the first series as with lineChart.
 */
export function overlayChart(container, { series, range, height = 260, slideMs }) {
  container.replaceChildren();
  const shown = range ? { ...range } : undefined;
  const tables = [];
  const seriesOpts = [{}];
  for (const s of series) {
    tables.push([s.points.map((p) => p.t / 1000), s.points.map((p) => numberOf(p.v))]);
    seriesOpts.push({
      label: s.unit ? `${s.label} (${s.unit})` : s.label,
      stroke: s.colour,
      width: 1.5,
      scale: s.axis === 'right' ? 'y2' : 'y',
      fill: series.length === 1 && !s.band ? alpha(s.colour, 0.08) : undefined,
      spanGaps: false,
    });
  }
  const bands = [];
  for (const s of series) {
    if (!s.band) continue;
    const edge = (name, pts) => {
      tables.push([pts.map((p) => p.t / 1000), pts.map((p) => p.v)]);
      seriesOpts.push({
        label: `${s.label} ${name}`,
        class: 'band-edge',
        stroke: alpha(s.colour, 0.35),
        width: 1,
        scale: s.axis === 'right' ? 'y2' : 'y',
        points: { show: false },
      });
      return seriesOpts.length - 1;
    };
    const upper = edge('max', s.band.max);
    const lower = edge('min', s.band.min);
    bands.push({ series: [upper, lower], fill: alpha(s.colour, 0.16) });
  }
  const data = tables.length === 1 ? tables[0] : uPlot.join(tables);
  const unitOf = (side) => series.find((s) => (s.axis ?? 'left') === side);
  const left = unitOf('left');
  const right = unitOf('right');
  const axisFont = '12px system-ui, sans-serif';
  const axes = [{}, { scale: 'y', size: 56, label: left?.unit || undefined, labelSize: 18, labelFont: axisFont }];
  if (right) axes.push({ scale: 'y2', side: 1, size: 56, grid: { show: false }, label: right.unit || undefined, labelSize: 18, labelFont: axisFont });
  const width = Math.max(240, container.clientWidth || 600);
  const plot = new uPlot(
    {
      width,
      height,
      scales: { x: { time: true, range: xRange(shown, { exact: !slideMs }) }, y: {}, ...(right ? { y2: {} } : {}) },
      series: seriesOpts,
      bands,
      axes,
      legend: { live: true },
    },
    data,
    container,
  );
  const ro = new ResizeObserver(() => plot.setSize({ width: Math.max(240, container.clientWidth), height }));
  ro.observe(container);

  // Live points are applied together a few times a second: one redraw for a burst.
  let pending = [];
  let timer;
  const flush = () => {
    timer = undefined;
    const points = pending;
    pending = [];
    const xs = data[0];
    const first = xs[0];
    const last = xs[xs.length - 1];
    const sx = plot.scales.x;
    // Zoomed in (a drag)? Then the scales stay as they are; else they follow the data.
    const full = !shown
      ? [first, last]
      : slideMs
        ? [Math.min(shown.from / 1000, first ?? Infinity), Math.max(shown.to / 1000, last ?? -Infinity)]
        : [shown.from / 1000, shown.to / 1000];
    const zoomed = sx.min !== null && sx.min !== undefined && (sx.min > full[0] + 1e-6 || sx.max < full[1] - 1e-6);
    for (const { index, t, v } of points) {
      const x = t / 1000;
      const i = lowerBound(xs, x);
      if (xs[i] !== x) for (const col of data) col.splice(i, 0, undefined);
      xs[i] = x;
      data[index + 1][i] = numberOf(v);
    }
    if (slideMs && shown && xs.length) {
      shown.from = Math.max(shown.from, xs[xs.length - 1] * 1000 - slideMs);
      const drop = lowerBound(xs, shown.from / 1000);
      if (drop > 0) for (const col of data) col.splice(0, drop);
    }
    plot.setData(data, !zoomed);
  };
  return {
    plot,
    /** Adds a live reading to series `index` (0 = the first series); drawn within ~200 ms. */
    push(index, t, v) {
      pending.push({ index, t, v });
      timer ??= setTimeout(flush, 200);
    },
    destroy() {
      clearTimeout(timer);
      ro.disconnect();
      plot.destroy();
    },
  };
}
