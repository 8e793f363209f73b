// uPlot bar chart over categories (hours, days, months): the current period's bars,
// optionally beside a fainter previous period. Sized to its box, resized with it.
import uPlot from '/ui/vendor/uPlot.esm.js';

const CURRENT = '#1f6feb';
const PREVIOUS = 'rgba(120, 130, 145, 0.55)';

/**
 * `labels`: one per category; `series`: [{ label, values }] (1 or 2; a null value draws
 * no bar). Returns { update(labels, series), destroy() }: update keeps the box size, so a
 * refresh moves nothing around the page.
 */
export function barChart(container, { labels, series, unit, height = 260 }) {
  container.replaceChildren();
  let names = labels;
  const build = (count) => {
    const two = count > 1;
    return {
      width: Math.max(240, container.clientWidth || 600),
      height,
      scales: { x: { time: false, range: () => [-0.5, names.length - 0.5] }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.08 : 1] } },
      series: [
        { label: 'period', value: (_u, i) => (i === null || i === undefined ? '' : (names[i] ?? '')) },
        ...series.map((s, i) => ({
          label: unit ? `${s.label} (${unit})` : s.label,
          fill: i === 0 ? CURRENT : PREVIOUS,
          stroke: i === 0 ? CURRENT : PREVIOUS,
          width: 0,
          // Two series: the previous period ends at the tick, the current one starts there.
          paths: uPlot.paths.bars({ size: two ? [0.42, 48] : [0.7, 64], align: two ? (i === 0 ? 1 : -1) : 0 }),
          points: { show: false },
          value: (_u, v) => (v === null || v === undefined ? '—' : v.toLocaleString(undefined, { maximumFractionDigits: v >= 100 ? 0 : 2 })),
        })),
      ],
      axes: [
        {
          // Integer ticks only, labelled with the category names, thinned to every n-th
          // so labels never overlap on a phone (uPlot does not thin custom splits itself).
          splits: (u) => {
            const width = u.bbox.width / (window.devicePixelRatio || 1) || container.clientWidth || 600;
            const step = Math.max(1, Math.ceil((names.length * 30) / Math.max(1, width)));
            return names.map((_, i) => i).filter((i) => i % step === 0);
          },
          values: (_u, splits) => splits.map((i) => names[i] ?? ''),
          grid: { show: false },
        },
        { size: 56 },
      ],
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
    };
  };
  const data = (s) => [names.map((_, i) => i), ...s.map((x) => x.values.map((v) => (v === undefined ? null : v)))];
  let plot = new uPlot(build(series.length), data(series), container);
  const ro = new ResizeObserver(() => plot.setSize({ width: Math.max(240, container.clientWidth), height }));
  ro.observe(container);
  return {
    get plot() {
      return plot;
    },
    update(nextLabels, nextSeries) {
      const rebuild = nextSeries.length !== series.length || nextSeries.some((s, i) => s.label !== series[i].label);
      names = nextLabels;
      series = nextSeries;
      if (rebuild) {
        plot.destroy();
        plot = new uPlot(build(series.length), data(series), container);
      } else plot.setData(data(series));
    },
    destroy() {
      ro.disconnect();
      plot.destroy();
    },
  };
}
