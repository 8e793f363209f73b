import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { encodeBatch } from '../../runtime/sync/codec.js';
import type { OutboxRecord } from '../../storage/store.js';
import { gzipSync } from 'node:zlib';
import { launchChromium, firstPage, logIn, pageErrors } from '../helpers/browser.js';
import type { Teardown } from '../helpers/teardown.js';
import { hmacHeaders, startTestCentral, type TestCentral } from './helpers.js';

export const ADMIN_PASSWORD = 'central-admin-pw-1';
export const OPERATOR_PASSWORD = 'central-operator-pw-1';
export const VIEWER_PASSWORD = 'central-viewer-pw-1';
export const ARTIFACTS = join(process.cwd(), 'test', 'artifacts', 'central');
export const VIEWPORTS = {
  desktop: { width: 1366, height: 800 },
  phone: { width: 390, height: 844 },
} as const;

/**
 * A real central (level store, in this process) with the web UI's users: the first admin from
 * the config (`auth.admin.password`), an operator and a viewer added through the user store
 * the UI uses.
 */
export async function startWebCentral(t: Teardown, config: Record<string, unknown>): Promise<TestCentral> {
  const central = await startTestCentral(t, { ...config, auth: { admin: { username: 'admin', password: ADMIN_PASSWORD }, ...(config.auth as object) } });
  const users = central.web!.security.users;
  await users.addUser({ username: 'otto', role: 'operator', password: OPERATOR_PASSWORD });
  await users.addUser({ username: 'vera', role: 'viewer', password: VIEWER_PASSWORD });
  return central;
}

/** A simulated gateway's `http` link: gzip JSON batches signed with its HMAC secret, as runtime/sync/http-link.ts sends them. */
export class SimulatedGateway {
  private seq = 0;

  constructor(
    readonly url: string,
    readonly id: string,
    readonly secret: string,
  ) {}

  /** Sends readings as one batch of the next seqs; resolves with central's answer. */
  async send(readings: Array<{ id: string; t: number; v: OutboxRecord['v'] }>, lane: 'history' | 'priority' = 'history'): Promise<{ stored: number }> {
    const records = readings.map((r) => ({ seq: ++this.seq, ...r }));
    const key = `${this.id}:${records[0]!.seq}-${records.at(-1)!.seq}`;
    const body = await encodeBatch({ gatewayId: this.id, key, first: records[0]!.seq, last: records.at(-1)!.seq, lane, records });
    const res = await fetch(`${this.url}/api/ingest/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', 'idempotency-key': key, ...hmacHeaders(this.secret, body) },
      body,
    });
    const answer = (await res.json()) as { stored: number; error?: { message: string } };
    if (res.status !== 200) throw new Error(`central refused ${this.id}'s batch: ${res.status} ${answer.error?.message}`);
    return answer;
  }

  /** Sends a status document (`outpost-status/1`: online/offline, storage state), as the http link's status lane. */
  async status(doc: Record<string, unknown>): Promise<void> {
    const body = gzipSync(JSON.stringify({ format: 'outpost-status/1', gw: this.id, ...doc }));
    const res = await fetch(`${this.url}/api/ingest/batch`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'content-encoding': 'gzip',
        'x-outpost-lane': 'status',
        'x-outpost-gateway': this.id,
        ...hmacHeaders(this.secret, body),
      },
      body,
    });
    if (res.status !== 200) throw new Error(`central refused ${this.id}'s status: ${res.status} ${await res.text()}`);
  }
}

/** The state of an alarm datapoint as the gateway's alarm engine writes it (runtime/alarms/state.ts). */
export function alarmState(o: {
  active: boolean;
  severity?: 'alarm' | 'warning';
  message: string;
  raisedAt: number;
  acknowledged?: boolean;
  ackedBy?: string;
}) {
  return {
    source: 'rule',
    type: 'threshold',
    severity: o.severity ?? 'alarm',
    message: o.message,
    active: o.active,
    since: o.raisedAt,
    raisedAt: o.raisedAt,
    ...(o.active ? {} : { clearedAt: o.raisedAt + 60_000 }),
    acknowledged: o.acknowledged ?? false,
    ...(o.ackedBy ? { ackedBy: o.ackedBy, ackedAt: o.raisedAt + 30_000 } : {}),
  };
}

/** A Chromium page at `viewport`, its uncaught errors and CSP violations collected. */
export async function openBrowser(t: Teardown, viewport: { width: number; height: number }): Promise<{ page: Page; errors: string[] }> {
  const context = await launchChromium(t, { viewport, locale: 'en-US' });
  const page = await firstPage(context);
  const errors = pageErrors(page);
  page.on('console', (m) => {
    // A CSP refusal (an inline style or script) is reported on the console.
    if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) errors.push(m.text());
  });
  return { page, errors };
}

/** Opens the UI at `hash` as `username` (a login there before is forgotten: its cookie is cleared). */
export async function logInAs(page: Page, url: string, username: string, password: string, hash = '#/fleet'): Promise<void> {
  await page.context().clearCookies();
  // A fresh load: going to another hash of the same page would keep the old login in the page.
  await page.goto('about:blank');
  await page.goto(`${url}/${hash}`);
  await logIn(page, username, password);
}

/** Whether the page scrolls sideways (it must not, at any width). */
export function overflows(page: Page): Promise<boolean> {
  return page.evaluate('document.documentElement.scrollWidth > window.innerWidth') as Promise<boolean>;
}

export async function screenshot(page: Page, name: string): Promise<void> {
  await mkdir(ARTIFACTS, { recursive: true });
  // From the top: the sticky header would otherwise sit where the page was scrolled to.
  await page.evaluate('window.scrollTo(0, 0)');
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/**
 * Every uPlot the page builds, kept in `window.__uplots`: the vendor module is served with a
 * wrapper around its default export (test instrumentation only), so the test reads what is
 * plotted. As test/dashboard/defects.test.ts does.
 */
export async function traceUPlot(page: Page): Promise<void> {
  await page.route('**/ui/vendor/uPlot.esm.js', async (route) => {
    const res = await route.fetch();
    const src = await res.text();
    const tail = 'export { uPlot as default };';
    if (!src.trimEnd().endsWith(tail)) throw new Error('uPlot.esm.js no longer ends with its default export: update traceUPlot');
    const body = `${src.trimEnd().slice(0, -tail.length)}
const __plots = (globalThis.__uplots = []);
function TracedUPlot(opts, data, target) { const u = new uPlot(opts, data, target); __plots.push(u); return u; }
Object.setPrototypeOf(TracedUPlot, uPlot);
TracedUPlot.prototype = uPlot.prototype;
export { TracedUPlot as default };
`;
    await route.fulfill({ response: res, body });
  });
}

/** The data of the newest uPlot on the page: [xs (s), ys]. */
export async function plotted(page: Page): Promise<{ xs: number[]; ys: Array<number | null> } | undefined> {
  return page.evaluate(() => {
    const plots = (globalThis as unknown as { __uplots?: Array<{ data: [number[], Array<number | null>] }> }).__uplots ?? [];
    const u = plots.at(-1);
    return u ? { xs: [...u.data[0]], ys: [...u.data[1]] } : undefined;
  });
}

/**
 * Waits until `expression` is true in the page, evaluated over CDP each time: the UI's CSP has
 * no 'unsafe-eval', which page.waitForFunction with a string needs once it polls.
 */
export async function pageTrue(page: Page, expression: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await page.evaluate(expression))) {
    if (Date.now() > end) throw new Error(`not true within ${timeoutMs} ms: ${expression}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
