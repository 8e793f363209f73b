// System page: the gateway's disk, memory, clock synchronisation, uptime and versions
// (GET /api/system, every 10 s); for admins the Node-RED editor and Restart, with a confirm
// step that says what will happen (POST /api/system/restart), then waits for the gateway.
import { get, post, ApiError } from './api.js';
import { stopLive } from './live.js';
import { h, formatDuration, formatTime } from './dom.js';
import { card, kv, every } from './widgets.js';
import { formatBytes } from './status-view.js';

/** Above this share of the disk or memory in use, the bar and the figure turn to the warning colour. */
const WARN_PERCENT = 90;

const pct = (n) => `${n.toLocaleString(undefined, { maximumFractionDigits: 1 })} %`;

/** A bar for a share in use (<meter>: no inline style needed under the CSP), warning above WARN_PERCENT. */
function usageBar(label, percent) {
  return h(
    'meter',
    {
      class: 'usage',
      min: '0',
      max: '100',
      low: String(WARN_PERCENT - 10),
      high: String(WARN_PERCENT),
      optimum: '0',
      value: String(percent),
      'aria-label': label,
    },
    pct(percent),
  );
}

function diskCard(s) {
  const d = s.disk;
  if (d.error) return card('Disk', h('p', { class: 'error' }, `Cannot measure ${d.path}: ${d.error}`));
  const warn = d.usedPercent >= WARN_PERCENT;
  return card(
    'Disk',
    usageBar('Disk in use', d.usedPercent),
    kv([
      ['used', h('span', { id: 'sys-disk-used', class: warn ? 'tone-warn' : undefined }, `${pct(d.usedPercent)} of ${formatBytes(d.totalBytes)}`)],
      ['free', h('span', { id: 'sys-disk-free' }, formatBytes(d.freeBytes))],
      ['database', h('span', { id: 'sys-disk-store' }, d.storeBytes === null ? '—' : formatBytes(d.storeBytes))],
      ['budget', d.budgetBytes === null ? 'none (storage.retention.maxBytes)' : formatBytes(d.budgetBytes)],
      ['data dir', h('span', { class: 'mono' }, d.path)],
    ]),
  );
}

function memoryCard(s) {
  const m = s.memory;
  return card(
    'Memory',
    usageBar('Memory in use', m.usedPercent),
    kv([
      [
        'in use',
        h(
          'span',
          { id: 'sys-mem-used', class: m.usedPercent >= WARN_PERCENT ? 'tone-warn' : undefined },
          `${pct(m.usedPercent)} of ${formatBytes(m.totalBytes)}`,
        ),
      ],
      ['available', formatBytes(m.availableBytes)],
      ['gateway (RSS)', h('span', { id: 'sys-mem-rss' }, formatBytes(m.process.rssBytes))],
      ['JS heap', `${formatBytes(m.process.heapUsedBytes)} of ${formatBytes(m.process.heapTotalBytes)}`],
    ]),
  );
}

function clockCard(s) {
  const c = s.clock;
  const state =
    c.synchronized === true
      ? h('strong', { id: 'sys-clock-state', class: 'tone-good' }, 'synchronised')
      : c.synchronized === false
        ? h('strong', { id: 'sys-clock-state', class: 'tone-warn' }, 'NOT synchronised')
        : h('strong', { id: 'sys-clock-state', class: 'tone-warn' }, 'unknown');
  // A clock that is off dates every reading wrong: say so where it cannot be missed.
  const warning =
    c.synchronized === true
      ? ''
      : h(
          'p',
          { class: 'clock-warning', role: c.synchronized === false ? 'alert' : undefined },
          c.synchronized === false
            ? 'The system clock is not synchronised: readings may be stamped with the wrong time. Check NTP (timedatectl, chrony).'
            : 'No time service answered, so it cannot be told whether the clock is right.',
        );
  return card(
    'Clock',
    warning,
    kv([
      ['sync', state],
      ['source', c.source ?? '—'],
      ['detail', h('span', { class: 'sv-val' }, c.detail)],
      ['gateway time', `${formatTime(s.time.now)} (${s.time.timezone})`],
    ]),
  );
}

function uptimeCard(s) {
  const u = s.uptime;
  const load = s.cpu.load;
  const fixed = (n) => n.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  return card(
    'Uptime and load',
    kv([
      ['gateway', h('span', { id: 'sys-uptime' }, formatDuration(u.processSeconds))],
      ['started', formatTime(u.startedAt)],
      ['host', formatDuration(u.hostSeconds)],
      ['load 1/5/15 min', h('span', { id: 'sys-load' }, `${fixed(load.avg1)} · ${fixed(load.avg5)} · ${fixed(load.avg15)}`)],
      ['CPUs', h('span', { id: 'sys-cpus' }, String(s.cpu.count))],
    ]),
  );
}

const VERSION_LABELS = [
  ['outpost', 'Outpost'],
  ['node', 'Node.js'],
  ['aedes', 'Aedes (MQTT broker)'],
  ['nodeRed', 'Node-RED'],
  ['level', 'level'],
  ['leveldbBinding', 'LevelDB binding (classic-level)'],
  ['os', 'OS'],
  ['kernel', 'kernel'],
];

function versionsCard(s) {
  const el = card('Versions', kv(VERSION_LABELS.map(([key, label]) => [label, h('span', { dataset: { version: key } }, s.versions[key] ?? 'not installed')])));
  el.classList.add('versions');
  return el;
}

/**
 * Admins: the Node-RED editor and Restart (confirm step, then wait for the gateway to answer
 * again). `quiet()` stops what would notice the old process going (the refresh, the live
 * connection): their 401 from the new one would swap this page for the login screen before
 * it can say the gateway is back.
 */
function adminCard(s, quiet) {
  const flows = s.flows.enabled
    ? h('p', {}, h('a', { id: 'sys-flows', href: s.flows.editor, target: '_blank', rel: 'noopener' }, 'Open the Node-RED editor ↗'))
    : h('p', { class: 'muted' }, 'Node-RED flows are off on this gateway (flows.enabled).');
  const msg = h('p', { class: 'form-msg', id: 'sys-restart-msg', role: 'status', 'aria-live': 'polite' }, '');
  const restart = h('button', { type: 'button', class: 'danger', id: 'sys-restart', disabled: !s.restart.available }, 'Restart gateway…');
  const confirmBox = h('div', { class: 'confirm', hidden: true });
  const note = h('p', { class: 'muted', id: 'sys-restart-note' }, `${s.restart.note}.`);
  restart.addEventListener('click', () => {
    const yes = h('button', { type: 'button', class: 'danger' }, 'Restart now');
    const no = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
    confirmBox.replaceChildren(
      h(
        'p',
        { id: 'sys-restart-confirm' },
        'Restart the gateway? It stops cleanly (every acknowledged reading is stored), devices reconnect by themselves, and everyone is logged out.',
      ),
      h('div', { class: 'btn-group' }, yes, no),
    );
    confirmBox.hidden = false;
    restart.hidden = true;
    no.addEventListener('click', () => {
      confirmBox.hidden = true;
      restart.hidden = false;
      restart.focus();
    });
    yes.addEventListener('click', async () => {
      yes.disabled = true;
      no.disabled = true;
      msg.className = 'form-msg';
      try {
        const r = await post('/api/system/restart');
        quiet();
        msg.textContent = r.message;
        confirmBox.hidden = true;
        await waitForRestart(msg);
      } catch (err) {
        msg.textContent = `Refused: ${err.message}`;
        msg.classList.add('bad');
        confirmBox.hidden = true;
        restart.hidden = false;
      }
    });
    no.focus();
  });
  return card('Administration', h('h3', {}, 'Flows'), flows, h('h3', {}, 'Restart'), note, restart, confirmBox, msg);
}

/** Polls /healthz (no login needed) until a process started after the click answers, then offers the login again. */
async function waitForRestart(msg) {
  const started = Date.now();
  for (let i = 0; i < 180; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    const health = await fetch('/healthz', { cache: 'no-store' })
      .then((r) => r.json())
      .catch(() => undefined);
    if (health && typeof health.uptimeSeconds === 'number' && health.uptimeSeconds <= (Date.now() - started) / 1000) {
      const reload = h('button', { type: 'button' }, 'Log in again');
      reload.addEventListener('click', () => location.reload());
      msg.replaceChildren(`The gateway is back after ${Math.round((Date.now() - started) / 1000)} s (version ${health.version}). `, reload);
      msg.classList.add('good');
      return;
    }
  }
  msg.textContent = 'The gateway has not come back within 3 minutes: check its service (journalctl -u outpost).';
  msg.classList.add('bad');
}

export async function system(main, _arg, { track, me }) {
  main.append(h('h1', {}, 'System'));
  const grid = h('div', { class: 'grid system', id: 'sys-cards' }, h('p', { class: 'muted' }, 'Reading /api/system…'));
  const admin = h('div', {});
  const status = h('p', { class: 'muted', role: 'status' }, '');
  main.append(grid, admin, status);
  let first = true;
  let restarting = false;
  const quiet = () => {
    restarting = true;
    stopLive();
  };
  await every(
    10_000,
    async () => {
      if (restarting) return;
      const s = await get('/api/system');
      grid.replaceChildren(clockCard(s), diskCard(s), memoryCard(s), uptimeCard(s), versionsCard(s));
      // The admin card keeps its state (a confirm step under way): built once.
      if (first && me?.role === 'admin') admin.replaceChildren(adminCard(s, quiet));
      first = false;
      status.textContent = `As of ${formatTime(s.time.now)}; refreshed every 10 s.`;
    },
    {
      track,
      onError: (err) => {
        if (err instanceof ApiError && err.status === 401) return;
        status.textContent = `Cannot read /api/system: ${err.message}`;
      },
    },
  );
}
