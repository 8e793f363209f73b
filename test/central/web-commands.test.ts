/**
 * The site page's "Send command" form and commands list, in Chromium at 1366×800 and 390×844:
 * an operator sends a setpoint; the list shows it queued, equal to `GET /api/commands`; the
 * gateway's poll takes it and refuses it (its signed HTTP poll downlink, as
 * runtime/sync/http-downlink.ts does), and the list shows `refused` with the gateway's code
 * and message. A viewer sees the form disabled and why. No sideways scrolling; screenshots in
 * test/artifacts/central/commands-<view>.png.
 */
import t from 'tap';
import { chromiumSkip } from '../helpers/browser.js';
import { eventually } from '../helpers/gateway.js';
import { hmacHeaders, type JsonBody } from './helpers.js';
import {
  OPERATOR_PASSWORD,
  SimulatedGateway,
  VIEWER_PASSWORD,
  VIEWPORTS,
  logInAs,
  openBrowser,
  overflows,
  screenshot,
  startWebCentral,
} from './web-helpers.js';

const GW = 'site-form';
const SECRET = 'site-form-hmac-secret-0123456789';
const DP = 'pump.setpoint';

/** The gateway's poll: GET the downlink, then POST an ack for each command, as http-downlink.ts. */
async function pollAndRefuse(url: string): Promise<JsonBody[]> {
  const path = '/api/ingest/downlink?after=0&limit=20';
  const res = await fetch(url + path, { headers: { 'x-outpost-gateway': GW, ...hmacHeaders(SECRET, Buffer.from(`GET ${path}`)) } });
  if (res.status === 204) return [];
  const { commands } = (await res.json()) as { commands: JsonBody[] };
  for (const c of commands) {
    const body = Buffer.from(
      JSON.stringify({
        gw: GW,
        cursor: c.cursor,
        requestId: c.requestId,
        ok: false,
        error: { code: 'SETPOINT_OUT_OF_RANGE', message: `${DP}: ${c.v} is above the maximum 80`, retryable: false },
        t: Date.now(),
      }),
    );
    const ack = await fetch(`${url}/api/ingest/downlink/ack`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-outpost-gateway': GW, ...hmacHeaders(SECRET, body) },
      body,
    });
    if (ack.status !== 200) throw new Error(`ack: ${ack.status} ${await ack.text()}`);
  }
  return commands;
}

t.test('the send form and the commands list, as a person sees them, equal the API', { skip: chromiumSkip }, async (t) => {
  const central = await startWebCentral(t, {
    commands: { tickSeconds: 1 },
    gateways: [{ id: GW, tags: ['pumps'], auth: { type: 'hmac', secret: SECRET }, downlink: { links: ['http'] } }],
  });
  const url = central.url;
  await new SimulatedGateway(url, GW, SECRET).send([{ id: DP, t: Date.now(), v: 40 }]);

  let n = 0;
  for (const view of ['desktop', 'phone'] as const) {
    const v = 90 + n++;
    const { page, errors } = await openBrowser(t, VIEWPORTS[view]);
    await logInAs(page, url, 'otto', OPERATOR_PASSWORD, `#/site/${GW}`);
    await page.locator('#cmd-form').waitFor();
    t.notOk(await page.locator('#cmd-at').isVisible(), `${view}: a setpoint has no time field`);
    await page.locator('#cmd-type').selectOption('schedule');
    t.ok(await page.locator('#cmd-at').isVisible(), `${view}: a schedule has one`);
    await page.locator('#cmd-type').selectOption('setpoint');
    await page.locator('#cmd-dp').fill(DP);
    await page.locator('#cmd-value').fill(String(v));
    await page.locator('#cmd-send').click();
    await eventually(async () => /Queued/.test((await page.locator('#cmd-msg').textContent()) ?? ''), 10_000, 50);
    const listed = (await central.get(`/api/commands?gateway=${GW}`)).body.items[0];
    t.same(listed.body, { id: DP, v }, `${view}: the API has the setpoint as typed (a number)`);
    t.equal(listed.by, 'user otto');
    const row = page.locator(`#cmd-table tr[data-command="${listed.id}"]`);
    await row.waitFor();
    t.equal(await row.getAttribute('data-state'), 'queued', `${view}: shown queued, as the API says (${listed.state})`);
    t.equal(await row.locator('th .muted').textContent(), `${DP} = ${v}`, `${view}: what was asked`);

    // The gateway polls and refuses it; the page shows the refusal with its reason.
    const served = await pollAndRefuse(url);
    t.same(
      served.map((c) => c.requestId),
      [listed.requestId],
      `${view}: the poll served it`,
    );
    await eventually(async () => (await row.getAttribute('data-state')) === 'refused', 10_000, 100);
    const api = (await central.get(`/api/commands/${listed.id}`)).body;
    t.equal(api.state, 'refused');
    t.match(await row.locator('.cmd-reason').textContent(), `${api.ack.error.code}: ${api.ack.error.message}`, `${view}: the gateway's code and message`);
    t.notOk(await overflows(page), `${view}: no sideways scrolling`);
    await screenshot(page, `commands-${view}`);

    // A viewer: the form is there, disabled, and says why.
    await logInAs(page, url, 'vera', VIEWER_PASSWORD, `#/site/${GW}`);
    await page.locator('#cmd-form').waitFor();
    t.ok(await page.locator('#cmd-send').isDisabled(), `${view}: a viewer cannot send`);
    t.match(await page.locator('#cmd-msg').textContent(), /viewer cannot send/);
    t.same(errors, [], `${view}: no page errors, no CSP violations`);
  }
});
