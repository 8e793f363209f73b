// Outpost Central's web UI: a hash-routed single page in plain ES modules (no build, no CDN),
// the gateway dashboard's conventions and its shared modules (dom.js, api.js, chart.js, …).
import { get, post, setCsrf, ApiError } from './api.js';
import { h } from './dom.js';
import { loginScreen, runCleanups } from './login.js';

const root = document.getElementById('root');
let me;
/** Cleanups of the current page (timers, charts). */
const cleanups = [];
const onLeave = (fn) => cleanups.push(fn);

/**
 * The pages: [hash, title, role needed, in the menu, module]. Each page's module is fetched
 * when it is first opened. The Users and Audit pages are the gateway dashboard's own.
 */
const PAGES = [
  ['fleet', 'Fleet', undefined, true, async () => (await import('./fleet.js')).fleet],
  ['alarms', 'Alarms', undefined, true, async () => (await import('./alarms.js')).alarms],
  ['site', 'Site', undefined, false, async () => (await import('./site.js')).site],
  ['users', 'Users', 'admin', true, async () => (await import('./users.js')).users],
  ['audit', 'Audit', 'admin', true, async () => (await import('./audit.js')).audit],
];

// Several requests may notice at once: the login screen is drawn once.
window.addEventListener('outpost:logged-out', () => me && showLogin('Your session ended: log in again.'));
window.addEventListener('hashchange', () => route());

async function boot() {
  try {
    me = await get('/api/auth/me');
    setCsrf(me.csrf);
    route();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) showLogin();
    else root.replaceChildren(h('p', { class: 'error', role: 'alert' }, `Cannot reach Outpost Central: ${err.message}`));
  }
}

function showLogin(notice) {
  leave();
  me = undefined;
  const screen = loginScreen('Outpost Central', notice, (who) => {
    me = who;
    if (!location.hash || location.hash === '#/login') location.hash = '#/fleet';
    route();
  });
  root.replaceChildren(screen.element);
  screen.focus();
}

const leave = () => runCleanups(cleanups);

function shell(active) {
  const nav = h(
    'nav',
    { 'aria-label': 'Main' },
    h(
      'ul',
      {},
      PAGES.filter(([, , role, listed]) => listed && (!role || me.role === role)).map(([id, label]) =>
        h('li', {}, h('a', { href: `#/${id}`, 'aria-current': id === active || (active === 'site' && id === 'fleet') ? 'page' : undefined }, label)),
      ),
    ),
  );
  const logout = h('button', { type: 'button', class: 'link' }, 'Log out');
  logout.addEventListener('click', async () => {
    await post('/api/auth/logout').catch((err) => console.debug('logout', err));
    showLogin('Logged out.');
  });
  const main = h('main', { id: 'main', tabindex: '-1' });
  root.replaceChildren(
    h(
      'header',
      { class: 'top' },
      h('a', { class: 'brand', href: '#/fleet' }, 'Outpost Central'),
      nav,
      h('div', { class: 'who' }, h('span', { class: 'user' }, `${me.username} (${me.role})`), me.kind === 'session' ? logout : ''),
    ),
    main,
  );
  return main;
}

function route() {
  if (!me) return;
  leave();
  const hash = location.hash.replace(/^#\/?/, '') || 'fleet';
  // The query (`?dp=…&range=…`) stays as it is; the path's parts are decoded.
  const q = hash.indexOf('?');
  const [page, ...rest] = (q < 0 ? hash : hash.slice(0, q)).split('/');
  const arg = rest.map(decodeURIComponent).join('/') + (q < 0 ? '' : hash.slice(q));
  const entry = PAGES.find(([id]) => id === page) ?? PAGES[0];
  if (entry[2] && me.role !== entry[2]) {
    location.replace('#/fleet');
    return;
  }
  const main = shell(entry[0]);
  document.title = `${entry[1]} · Outpost Central`;
  const shown = location.hash;
  Promise.resolve(entry[4]())
    .then((fn) => (location.hash === shown ? fn(main, arg, { track: onLeave, me }) : undefined))
    .catch((err) => {
      if (err instanceof ApiError && err.status === 401) return;
      main.append(h('p', { class: 'error', role: 'alert' }, err.message));
    });
}

boot();
