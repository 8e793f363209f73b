// uPlot wrapper: one series over time, sized to its container, resized with it.
import uPlot from '/ui/vendor/uPlot.esm.js';

export function lineChart(container, { label, unit, points, height = 260 }) {
  container.replaceChildren();
  const xs = points.map((p) => p.t / 1000);
  const ys = points.map((p) => (typeof p.v === 'boolean' ? Number(p.v) : typeof p.v === 'number' ? p.v : null));
  const width = Math.max(240, container.clientWidth || 600);
  const opts = {
    width,
    height,
    scales: { x: { time: true } },
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
