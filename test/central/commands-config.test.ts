/**
 * A configuration pushed from Outpost Central (issue 26 item 3): `POST /api/commands` with
 * `type: config` carries a whole outpost.yaml; central adds its SHA-256; the command goes signed
 * over MQTT to a real gateway that opted in (`sync.remoteConfig.enabled`), which checks it with
 * its own schema and keeps it as `<config>.pending` (state `applied` at central, the gateway's
 * result `pending`). A config the gateway's schema refuses comes back `refused` with its
 * message; a site that did not opt in refuses every push; bad requests are refused by central.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { eventually } from '../helpers/gateway.js';
import { processYamlHead, spawnOutpost } from '../helpers/process.js';
import { ApiClient } from '../security/harness.js';
import { tempDir } from '../helpers/teardown.js';
import { Mosquitto } from '../sync/helpers/mosquitto.js';
import type { JsonBody } from './helpers.js';
import { OPERATOR_PASSWORD, startWebCentral } from './web-helpers.js';

const SECRET = 'central-config-push-link-secret-77a';

t.test('config pushed from central: checked by the gateway, kept pending; refused with the reason; refused without opt-in', async (t) => {
  const broker = await Mosquitto.create(t);
  const sites = ['site-cfg', 'site-closed'];
  const central = await startWebCentral(t, {
    ingest: { mqtt: { url: broker.url, clientId: 'central-cfg', reconnectMs: 200 } },
    commands: { tickSeconds: 1, resendAfterSeconds: 30 },
    gateways: sites.map((id) => ({ id, auth: { type: 'hmac', secret: SECRET }, downlink: { links: ['mqtt'] } })),
  });

  const dir = await tempDir(t, 'outpost-cfg-push-');
  await writeFile(join(dir, 'downlink.secret'), `${SECRET}\n`, { mode: 0o600 });
  // Two configs differ by a datapoint; `log` lets a push break the gateway's schema.
  const siteYaml = (id: string, extraDatapoint: boolean, enabled: boolean, log?: string): string =>
    `${processYamlHead({ id, dataDir: join(dir, id), ...(log ? { log } : {}) })}datapoints:
  - { id: site.base, kind: sensor, type: number }
${extraDatapoint ? '  - { id: site.extra, kind: sensor, type: number }\n' : ''}sync:
  enabled: true
  pollMs: 50
  datapointsIntervalMs: 0
  remoteConfig: { enabled: ${enabled} }
  links:
    - name: central
      type: mqtt
      url: ${broker.url}
      reconnectMs: 100
      downlinkAuth: { secretFile: ${join(dir, 'downlink.secret')} }
`;
  const files: Record<string, string> = {};
  for (const [i, id] of sites.entries()) {
    files[id] = join(dir, `${id}.yaml`);
    await writeFile(files[id], siteYaml(id, false, i === 0));
    const proc = spawnOutpost(['start', '-c', files[id]]);
    t.teardown(() => proc.child.kill('SIGKILL'));
    await proc.ready;
  }
  for (const id of sites) await eventually(async () => (await central.get(`/api/gateways/${id}`)).body?.status?.state === 'online', 20_000, 100);

  const operator = new ApiClient(central.url);
  t.equal((await operator.login('otto', OPERATOR_PASSWORD)).status, 200);
  const send = async (body: unknown): Promise<{ status: number; body: JsonBody }> => {
    const res = await operator.request('POST', '/api/commands', body);
    return { status: res.status, body: await res.json() };
  };
  const settled = (id: string) =>
    eventually(
      async () => {
        const c = (await central.get(`/api/commands/${id}`)).body;
        return c.state === 'applied' || c.state === 'refused' ? c : undefined;
      },
      30_000,
      100,
    );

  // ---- accepted: kept pending on the site ----
  const next = siteYaml('site-cfg', true, true);
  const sent = await send({ target: { gateway: 'site-cfg' }, type: 'config', body: { yaml: next, apply: 'next-start' } });
  t.equal(sent.status, 202, 'queued');
  const done = await settled(sent.body.items[0].id);
  t.equal(done.state, 'applied', 'the gateway took it');
  t.match(
    done.ack.result,
    { state: 'pending', sha256: createHash('sha256').update(next).digest('hex'), apply: 'next-start' },
    'its result: pending, with the hash',
  );
  t.equal(await readFile(`${files['site-cfg']}.pending`, 'utf8'), next, 'stored as <config>.pending on the site');

  // ---- refused by the gateway's schema, with its message ----
  const bad = await send({ target: { gateway: 'site-cfg' }, type: 'config', body: { yaml: siteYaml('site-cfg', true, true, 'loud') } });
  const refused = await settled(bad.body.items[0].id);
  t.equal(refused.state, 'refused');
  t.match(refused.ack.error, { code: 'CONFIG_INVALID', message: /log\.level/ }, "the gateway's code and the path it names");

  // ---- a site that did not opt in ----
  const closed = await send({ target: { gateway: 'site-closed' }, type: 'config', body: { yaml: siteYaml('site-closed', true, false) } });
  t.match((await settled(closed.body.items[0].id)).ack.error, { code: 'CONFIG_REMOTE_DISABLED' });

  // ---- central refuses what cannot be a config push ----
  for (const [body, why] of [
    [{ yaml: '' }, /whole outpost.yaml/],
    [{ yaml: next, apply: 'now' }, /restart.*next-start/],
    [{ yaml: next, sha256: 'abc' }, /not "sha256"/],
    [{ yaml: 'x'.repeat(300 * 1024) }, /at most 262144 bytes/],
  ] as const) {
    const r = await send({ target: { gateway: 'site-cfg' }, type: 'config', body });
    t.equal(r.status, 400, `refused: ${JSON.stringify(body).slice(0, 40)}`);
    t.match(r.body.error.message, why);
  }
});
