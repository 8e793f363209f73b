// The fleet map: an equirectangular projection (x = longitude, y = −latitude, in degrees) drawn
// as SVG with a latitude/longitude graticule — no tiles, no coastlines, nothing from the
// internet. A dot per gateway with a location (configured, or Iridium's estimate of its modem,
// with its error circle), coloured by state; each dot is a link to the site's page.
import { h } from './dom.js';
import { STATES } from './ui.js';

const SVG = 'http://www.w3.org/2000/svg';
/** Kilometres per degree of latitude (a degree of longitude is that times cos(latitude)). */
const KM_PER_DEGREE = 111.32;
/** The view spans at least this much longitude: a single site is shown with its surroundings. */
const MIN_SPAN_LON = 24;

/** An SVG element: attributes are presentation attributes or ids, never styles (CSP). */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== undefined && c !== null && c !== false) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/**
 * The box shown, [west, north, width, height] in degrees: the whole world, or the gateways'
 * extent with a margin, widened to the world's 2:1 and kept inside it.
 */
export function viewBox(points, whole) {
  if (whole || points.length === 0) return [-180, -90, 360, 180];
  const lons = points.map((p) => p.lon);
  const lats = points.map((p) => p.lat);
  let w = Math.max(Math.max(...lons) - Math.min(...lons), MIN_SPAN_LON) * 1.3;
  let hgt = Math.max(Math.max(...lats) - Math.min(...lats), MIN_SPAN_LON / 2) * 1.3;
  if (w < 2 * hgt) w = 2 * hgt;
  else hgt = w / 2;
  w = Math.min(w, 360);
  hgt = Math.min(hgt, 180);
  const cx = (Math.max(...lons) + Math.min(...lons)) / 2;
  const cy = (Math.max(...lats) + Math.min(...lats)) / 2;
  const west = Math.min(Math.max(cx - w / 2, -180), 180 - w);
  const north = Math.min(Math.max(cy + hgt / 2, -90 + hgt), 90);
  return [west, -north, w, hgt];
}

/** The graticule's spacing for a view `span` degrees wide: about 6–12 lines across. */
function gridStep(span) {
  return span > 180 ? 30 : span > 90 ? 15 : span > 45 ? 10 : span > 20 ? 5 : span > 8 ? 2 : 1;
}

const degrees = (v, pos, neg) => `${Math.abs(v)}°${v === 0 ? '' : v > 0 ? pos : neg}`;

/**
 * The map for the gateways `items` (GET /api/gateways). Returns the card's content: the SVG,
 * a legend with counts, and a note naming how many have no location.
 */
export function fleetMap(items) {
  const located = items.filter((g) => g.location);
  let whole = false;
  const box = h('div', { class: 'map-box' });
  const toggle = h('button', { type: 'button', class: 'secondary', id: 'map-extent', 'aria-pressed': 'false' }, 'Whole world');
  const draw = () => {
    const [x, y, w, ht] = viewBox(
      located.map((g) => g.location),
      whole,
    );
    const step = gridStep(w);
    const lines = [];
    const labels = [];
    const font = ht / 36;
    for (let lon = Math.ceil(x / step) * step; lon <= x + w; lon += step) {
      lines.push(svg('line', { x1: lon, y1: y, x2: lon, y2: y + ht, class: lon === 0 ? 'gridline meridian' : 'gridline' }));
      labels.push(svg('text', { x: lon + font * 0.2, y: y + ht - font * 0.3, 'font-size': font, class: 'grid-label' }, degrees(lon, 'E', 'W')));
    }
    for (let lat = Math.ceil(-(y + ht) / step) * step; lat <= -y; lat += step) {
      lines.push(svg('line', { x1: x, y1: -lat, x2: x + w, y2: -lat, class: lat === 0 ? 'gridline equator' : 'gridline' }));
      labels.push(svg('text', { x: x + font * 0.2, y: -lat - font * 0.25, 'font-size': font, class: 'grid-label' }, degrees(lat, 'N', 'S')));
    }
    const r = w / 90;
    const dots = located.map((g) => {
      const { lat, lon, cepKm, source } = g.location;
      const title = `${g.name ?? g.id}: ${g.state} (${degrees(+lat.toFixed(3), 'N', 'S')} ${degrees(+lon.toFixed(3), 'E', 'W')}${source === 'iridium' ? `, Iridium estimate${cepKm ? ` ± ${cepKm} km` : ''}` : ''})`;
      return svg(
        'a',
        { href: `#/site/${encodeURIComponent(g.id)}`, class: `dot st-${g.state}`, 'data-gateway': g.id, 'aria-label': title },
        // Iridium's circular error probable, drawn to scale (kilometres to degrees of latitude).
        cepKm ? svg('circle', { cx: lon, cy: -lat, r: cepKm / KM_PER_DEGREE, class: 'cep' }) : '',
        svg('circle', { cx: lon, cy: -lat, r, class: 'mark' }),
        svg('title', {}, title),
      );
    });
    box.replaceChildren(
      svg(
        'svg',
        {
          viewBox: `${x} ${y} ${w} ${ht}`,
          class: 'fleet-map',
          role: 'group',
          'aria-label': `Map of ${located.length} gateways with a location`,
          preserveAspectRatio: 'xMidYMid meet',
        },
        svg('rect', { x, y, width: w, height: ht, class: 'sea' }),
        lines,
        labels,
        dots,
      ),
    );
  };
  toggle.addEventListener('click', () => {
    whole = !whole;
    toggle.setAttribute('aria-pressed', String(whole));
    toggle.textContent = whole ? 'Fit to gateways' : 'Whole world';
    draw();
  });
  draw();
  const counts = {};
  for (const g of located) counts[g.state] = (counts[g.state] ?? 0) + 1;
  const legend = h(
    'ul',
    { class: 'legend', 'aria-label': 'Legend' },
    Object.keys(STATES).map((s) => h('li', {}, h('span', { class: `swatch st-${s}`, 'aria-hidden': 'true' }), `${s} ${counts[s] ?? 0}`)),
  );
  const missing = items.length - located.length;
  return h(
    'div',
    { class: 'map' },
    box,
    h('div', { class: 'toolbar map-foot' }, legend, located.length ? toggle : ''),
    missing
      ? h(
          'p',
          { class: 'muted', id: 'map-missing' },
          `${missing} of ${items.length} gateways have no location (gateways[].location in central.yaml, or an Iridium message).`,
        )
      : '',
  );
}
