// Outpost dashboard: a hash-routed single page in plain ES modules (no build, no CDN).
import { get, post, setCsrf, ApiError } from './api.js';
import { h } from './dom.js';
import { startLive, stopLive, onConnection } from './live.js';
import { overview } from './overview.js';
import { datapoints, datapoint } from './datapoints.js';
import { users } from './users.js';
import { consumption } from './consumption.js';
import { chargers } from './chargers.js';
import { links } from './links.js';
import { imports } from './imports.js';
import { audit } from './audit.js';

const root = document.getElementById('root');
let me;
/** Cleanups of the current page (live listeners, charts, timers). */
const cleanups = [];
const onLeave = (fn) => cleanups.push(fn);

const PAGES = [
  ['overview', 'Overview'],
  ['datapoints', 'Datapoints'],
  ['consumption', 'Consumption'],
  ['chargers', 'Chargers'],
  ['links', 'Links'],
  ['imports', 'Imports'],
  ['users', 'Users', 'admin'],
  ['audit', 'Audit', 'admin'],
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
  const msg = h('p', { class: 'form-msg', role: 'alert', 'aria-live': 'assertive' }, notice ?? '');
  const user = h('input', { id: 'login-user', name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none' });
  const pass = h('input', { id: 'login-pass', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const form = h(
    'form',
    { class: 'login card', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'Outpost'),
    h('label', { for: 'login-user' }, 'Username'),
    user,
    h('label', { for: 'login-pass' }, 'Password'),
    pass,
    h('button', { type: 'submit' }, 'Log in'),
    msg,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    msg.textContent = '';
    try {
      me = await post('/api/auth/login', { username: user.value.trim(), password: pass.value });
      setCsrf(me.csrf);
      me = await get('/api/auth/me');
      startLive();
      if (!location.hash || location.hash === '#/login') location.hash = '#/overview';
      route();
    } catch (err) {
      msg.textContent = err.message;
      pass.value = '';
      pass.focus();
    }
  });
  root.replaceChildren(h('main', { id: 'main', class: 'login-wrap' }, form));
  user.focus();
}

function leave() {
  for (const fn of cleanups.splice(0)) {
    try {
      fn();
    } catch (err) {
      console.error('cleanup failed', err);
    }
  }
}

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
  const pages = { overview, datapoints: arg ? datapoint : datapoints, consumption, chargers, links, imports, users, audit };
  const fn = pages[page] ?? overview;
  document.title = `${(PAGES.find(([id]) => id === page) ?? ['', 'Overview'])[1]} · Outpost`;
  // Pages in their own modules get what they need: the cleanup tracker and the user.
  Promise.resolve(fn(main, arg, { track: onLeave, me })).catch((err) => {
    if (err instanceof ApiError && err.status === 401) return;
    main.append(h('p', { class: 'error', role: 'alert' }, err.message));
  });
}

boot();
