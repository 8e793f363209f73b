// uPlot wrapper: one series over time, sized to its container, resized with it.
import uPlot from '/ui/vendor/uPlot.esm.js';

/**
 * The time axis. uPlot's own autoscale puts a single point at the start of a span of
 * 86,400 / 1e-3 s (about 1,000 days: the 2027–2029 axis), so with `range` ({ from, to },
 * epoch ms) the axis spans the selected range, growing with live points past `to`; without
 * it, a single point gets an hour either side. A zoom (drag) is kept as asked.
 */
export function xRange(range) {
  return (u, min, max) => {
    const xs = u.data?.[0] ?? [];
    const first = xs[0];
    const last = xs[xs.length - 1];
    const autoscaled = !xs.length || min === null || (min === first && (max === last || first === last));
    if (!autoscaled) return [min, max];
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
