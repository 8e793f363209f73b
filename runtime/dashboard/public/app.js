// Outpost dashboard: a hash-routed single page in plain ES modules (no build, no CDN).
import { get, post, setCsrf, ApiError } from './api.js';
import { h } from './dom.js';
import { loginScreen, runCleanups } from './login.js';
import { startLive, stopLive, onConnection } from './live.js';
import { overview } from './overview.js';
import { alarmBanner } from './banner.js';
import { flowsNavItem } from './widgets.js';

const root = document.getElementById('root');
let me;
/** Cleanups of the current page (live listeners, charts, timers). */
const cleanups = [];
const onLeave = (fn) => cleanups.push(fn);

/**
 * The pages: [hash, title, role needed, module]. Only the Overview is loaded with the app;
 * every other page's module is fetched when it is first opened (first paint on a Pi).
 * `module` is a function returning the page function for the route's argument.
 */
const PAGES = [
  ['overview', 'Overview', undefined, async () => overview],
  ['datapoints', 'Datapoints', undefined, async (arg) => (await import('./datapoints.js'))[arg ? 'datapoint' : 'datapoints']],
  ['energy', 'Energy', undefined, async () => (await import('./energy.js')).energy],
  ['consumption', 'Consumption', undefined, async () => (await import('./consumption.js')).consumption],
  ['chargers', 'Chargers', undefined, async () => (await import('./chargers.js')).chargers],
  ['alarms', 'Alarms', undefined, async () => (await import('./alarms.js')).alarms],
  ['links', 'Links', undefined, async () => (await import('./links.js')).links],
  ['imports', 'Imports', undefined, async () => (await import('./imports.js')).imports],
  ['system', 'System', undefined, async () => (await import('./system.js')).system],
  ['users', 'Users', 'admin', async () => (await import('./users.js')).users],
  ['audit', 'Audit', 'admin', async () => (await import('./audit.js')).audit],
];

// Several requests may notice at once (and the live connection too): the login screen is drawn once.
window.addEventListener('outpost:logged-out', () => me && showLogin('Your session ended: log in again.'));
window.addEventListener('hashchange', () => route());

async function boot() {
  try {
    me = await get('/api/auth/me');
    setCsrf(me.csrf);
    startLive();
    route();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) showLogin();
    else root.replaceChildren(h('p', { class: 'error', role: 'alert' }, `Cannot reach the gateway: ${err.message}`));
  }
}

function showLogin(notice) {
  leave();
  stopLive();
  me = undefined;
  const screen = loginScreen('Outpost', notice, (who) => {
    me = who;
    startLive();
    if (!location.hash || location.hash === '#/login') location.hash = '#/overview';
    route();
  });
  root.replaceChildren(screen.element);
  screen.focus();
}

const leave = () => runCleanups(cleanups);

function shell(active) {
  const liveDot = h('span', { class: 'live-dot', role: 'status', 'aria-live': 'polite' }, 'connecting');
  onLeave(
    onConnection((up) => {
      liveDot.textContent = up ? 'live' : 'offline';
      liveDot.classList.toggle('up', up);
    }),
  );
  const nav = h(
    'nav',
    { 'aria-label': 'Main' },
    h(
      'ul',
      {},
      PAGES.filter(([, , role]) => !role || me.role === role).map(([id, label]) =>
        h('li', {}, h('a', { href: `#/${id}`, 'aria-current': id === active ? 'page' : undefined }, label)),
      ),
      // Admins: the Node-RED editor in a new tab, when flows are on (asked once per page load).
      flowsNavItem(me),
    ),
  );
  const logout = h('button', { type: 'button', class: 'link' }, 'Log out');
  logout.addEventListener('click', async () => {
    await post('/api/auth/logout').catch(() => undefined);
    showLogin('Logged out.');
  });
  const main = h('main', { id: 'main', tabindex: '-1' });
  root.replaceChildren(
    h(
      'header',
      { class: 'top' },
      h('a', { class: 'brand', href: '#/overview' }, 'Outpost'),
      nav,
      h('div', { class: 'who' }, liveDot, h('span', { class: 'user' }, `${me.username} (${me.role})`), me.kind === 'session' ? logout : ''),
    ),
    // Active alarms on every page (banner.js); empty while there are none.
    alarmBanner({ track: onLeave, me }),
    main,
  );
  return main;
}

function route() {
  if (!me) return;
  leave();
  const [page, ...rest] = (location.hash.replace(/^#\/?/, '') || 'overview').split('/');
  const arg = rest.map(decodeURIComponent).join('/');
  const needs = PAGES.find(([id]) => id === page)?.[2];
  if (needs && me.role !== needs) {
    location.replace('#/overview');
    return;
  }
  const main = shell(page);
  const entry = PAGES.find(([id]) => id === page) ?? PAGES[0];
  document.title = `${entry[1]} · Outpost`;
  // Pages in their own modules get what they need: the cleanup tracker and the user.
  const shown = location.hash;
  Promise.resolve(entry[3](arg))
    .then((fn) => (location.hash === shown ? fn(main, arg, { track: onLeave, me }) : undefined))
    .catch((err) => {
      if (err instanceof ApiError && err.status === 401) return;
      main.append(h('p', { class: 'error', role: 'alert' }, err.message));
    });
}

boot();
