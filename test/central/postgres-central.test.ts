/**
 * `outpost central` with `database: postgres://…` on a throwaway cluster of Debian's
 * PostgreSQL: a real gateway syncing over its http link into one central, a second central (a
 * real `outpost central` process, the URL and its password from OUTPOST_CENTRAL_DATABASE)
 * taking a signed batch into the same database, both APIs answering from it, and the schema
 * as an operator sees it with psql.
 */
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeBatch } from '../../runtime/sync/codec.js';
import type { OutboxRecord } from '../../storage/store.js';
import { partitionSuffix, weekStart } from '../../central/store/postgres/partitions.js';
import { eventually, startTestGateway } from '../helpers/gateway.js';
import { postgresSkip, psql, startThrowawayPostgres } from '../helpers/postgres.js';
import { spawnOutpost } from '../helpers/process.js';
import { tempDir } from '../helpers/teardown.js';
import { API_TOKEN, API_TOKEN_HASH, hmacHeaders, startTestCentral, type JsonBody } from './helpers.js';

const GW = 'site-pg';
const SECRET = 'site-pg-hmac-secret-0123456789';
const IDS = ['plant.meter.power', 'plant.meter.energy', 'plant.boiler.temp'];
const T0 = Date.UTC(2025, 4, 5, 6);
/** In the URL only: the throwaway cluster trusts loopback, so no server ever checks it, and no output may show it. */
const PASSWORD = 'Not-Logged-4711';

t.test('outpost central on PostgreSQL: a real gateway over http, a second central process on the same database, the schema', postgresSkip(), async (t) => {
  const pg = await startThrowawayPostgres(t);
  const url = pg.url.replace('outpost@', `outpost:${PASSWORD}@`);
  const central = await startTestCentral(t, {
    database: url,
    postgres: { rollupRefreshSeconds: 1 },
    gateways: [{ id: GW, name: 'Boiler house', auth: { type: 'hmac', secret: SECRET } }],
  });
  t.equal(central.store?.kind, 'postgres');
  const gw = await startTestGateway(t, {
    gateway: { id: GW },
    storage: { sync: false },
    datapoints: IDS.map((id) => ({ id, kind: 'sensor', type: 'number' })),
    sync: {
      enabled: true,
      pollMs: 20,
      datapointsIntervalMs: 200,
      backoff: { initialMs: 50, maxMs: 200 },
      links: [
        {
          name: 'central',
          type: 'http',
          url: `${central.url}/api/ingest/batch`,
          auth: { type: 'hmac', secret: SECRET },
          batchRecords: 100,
          ackTimeoutMs: 5000,
        },
      ],
    },
  });
  const points = Array.from({ length: 600 }, (_, n) => ({ id: IDS[n % 3]!, v: n % 3 === 1 ? n * 10 : n / 4, t: T0 + n * 1000 }));
  await gw.gateway.ingest.acceptMany('test', points);
  const store = central.store!;
  await eventually(
    async () => {
      const drained = gw.gateway.store.stats().lastSeq;
      return (await store.countSeqs(GW)) >= drained && gw.gateway.store.stats().ackedSeq >= drained;
    },
    60_000,
    100,
  );
  for (const id of IDS) {
    const onSite = await gw.gateway.store.query(id, { from: T0, to: T0 + 1_000_000, limit: 100_000 });
    t.same(await store.query(GW, id, { from: T0, to: T0 + 1_000_000, limit: 100_000 }), onSite, `${id}: the 200 readings of the site, in PostgreSQL`);
  }
  const range = `from=${T0}&to=${T0 + 600_000}`;
  const siteAgg = (await (await fetch(`${gw.httpUrl}/api/datapoints/plant.boiler.temp/values?${range}&interval=1m&agg=avg`)).json()) as JsonBody;
  const centralAgg = await central.get(`/api/gateways/${GW}/datapoints/plant.boiler.temp/values?${range}&interval=1m&agg=avg`);
  t.same(centralAgg.body.values, siteAgg.values, '1 min averages: what the site answers');
  t.equal(centralAgg.body.values.length, 10);
  // The gateway keeps sending its own status datapoints (now): the readings of May 2025 are what must be refreshed.
  await eventually(async () => (await psql(pg.url, "SELECT count(*) FROM outpost.rollup_dirty WHERE minute < '2025-06-01'")) === '0', 20_000, 200);
  const refreshed = await central.get(`/api/gateways/${GW}/datapoints/plant.boiler.temp/values?${range}&interval=1m&agg=avg`);
  t.same(refreshed.body.values, siteAgg.values, 'the same from the refreshed rollups');
  const summary = (await central.get(`/api/gateways/${GW}`)).body;
  t.equal(summary.link, 'http');
  t.equal(summary.name, 'Boiler house');

  // A second central process, its own HTTP ingest, the same database: no owner, no forwarding.
  const dir = await tempDir(t, 'outpost-central-b-');
  const file = join(dir, 'central.yaml');
  await writeFile(
    file,
    `id: central-b
dataDir: ${join(dir, 'data')}
log: { level: debug }
http: { host: 127.0.0.1, port: 0, tokens: ["${API_TOKEN_HASH}"] }
gateways:
  - id: ${GW}
    auth: { type: hmac, secret: ${SECRET} }
`,
  );
  const other = spawnOutpost(['central', '-c', file], { env: { OUTPOST_CENTRAL_DATABASE: url } });
  t.teardown(async () => {
    other.child.kill('SIGTERM');
    await other.exited;
  });
  const otherUrl = await other.ready;
  const health = (await (await fetch(`${otherUrl}/healthz`)).json()) as JsonBody;
  t.same(health.store, { kind: 'postgres', state: 'ok' }, 'the second central: the PostgreSQL store, ok');
  // A batch holding seqs the first central stored (a retry reaching another receiver) and new ones.
  const old: OutboxRecord[] = Array.from({ length: 10 }, (_, i) => ({ seq: i + 1, id: 'plant.meter.power', t: T0, v: -1 }));
  const fresh: OutboxRecord[] = Array.from({ length: 5 }, (_, i) => ({ seq: 1_000_001 + i, id: 'plant.extra', t: T0 + i * 1000, v: i + 0.5 }));
  const records = [...old, ...fresh];
  const key = `${GW}:1-1000005`;
  const body = await encodeBatch({ gatewayId: GW, key, first: 1, last: 1_000_005, lane: 'history', records });
  const res = await fetch(`${otherUrl}/api/ingest/batch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', 'idempotency-key': key, ...hmacHeaders(SECRET, body) },
    body,
  });
  const answer = (await res.json()) as JsonBody;
  t.equal(res.status, 200);
  t.same([answer.stored, answer.duplicates], [5, 10], 'the seqs the first central stored are duplicates here');
  const extra = await central.get(`/api/gateways/${GW}/datapoints/plant.extra/values?from=${T0}&to=${T0 + 10_000}`);
  t.same(
    extra.body.values.map((v: { v: number }) => v.v),
    [0.5, 1.5, 2.5, 3.5, 4.5],
    'the first central answers with what the second stored',
  );
  const viaOther = await fetch(`${otherUrl}/api/gateways/${GW}/datapoints/plant.meter.power/values?from=${T0}&to=${T0 + 1_000_000}&limit=1`, {
    headers: { authorization: `Bearer ${API_TOKEN}` },
  });
  t.same(((await viaOther.json()) as JsonBody).values, [{ t: T0, v: 0 }], "and the second the first's, the site's value kept (first copy wins)");

  // The schema as an operator sees it.
  t.equal(
    await psql(pg.url, "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'outpost.seq_runs'::regclass AND contype = 'x'"),
    "EXCLUDE USING gist (gateway WITH =, int8range(first_seq, last_seq, '[]'::text) WITH &&)",
    'seqs unique per gateway: stored as runs, no two of a gateway overlapping',
  );
  t.equal(
    await psql(pg.url, "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'outpost.readings'::regclass AND contype = 'p'"),
    'PRIMARY KEY (series, t)',
  );
  t.equal(await psql(pg.url, "SELECT pg_get_partkeydef('outpost.readings'::regclass)"), 'RANGE (t)', 'readings partitioned by time');
  const partitions = await psql(
    pg.url,
    "SET TimeZone = 'UTC'; SELECT c.relname || ' ' || pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'outpost.readings'::regclass ORDER BY 1",
  );
  t.match(partitions, /readings_p20250505 FOR VALUES FROM \('2025-05-05 00:00:00\+00'\) TO \('2025-05-12 00:00:00\+00'\)/, 'the week of the readings');
  t.match(partitions, new RegExp(`readings_${partitionSuffix(weekStart(Date.now()))} `), 'and this week, made ahead');
  t.equal(await psql(pg.url, `SELECT count(*) FROM outpost.readings_p20250505`), '605', 'the readings are in their week');
  t.equal(
    await psql(pg.url, `SELECT count(*) FROM outpost.reading_values WHERE gateway = '${GW}' AND datapoint = 'plant.meter.power'`),
    '200',
    'by name through the view',
  );
  t.equal(
    await psql(pg.url, "SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = 'outpost' AND application_name = 'outpost-central'"),
    't',
    'the centrals connections are named in pg_stat_activity',
  );

  const output = other.stdout() + other.stderr() + JSON.stringify(central.logs);
  t.notOk(output.includes(PASSWORD), 'the password is in no log line and no output of either central');
  t.match(
    other.stdout(),
    /ready: http:\/\/127\.0\.0\.1:\d+ {2}\(store postgres at postgres:\/\/outpost:\*\*\*@127\.0\.0\.1/,
    'the ready line names the database without it',
  );
});

t.test('database: postgres:// in the config: checked, and the password kept in one place', async (t) => {
  const { validateCentralConfig } = await import('../../central/config.js');
  const refused = (raw: unknown, says: RegExp, what: string) => {
    try {
      validateCentralConfig(raw);
      t.fail(`${what}: accepted`);
    } catch (err) {
      t.match((err as Error).message, says, what);
      t.notOk((err as Error).message.includes('s3cret'), `${what}: the message does not repeat the URL`);
    }
  };
  const ok = validateCentralConfig({ database: 'postgres://outpost@db.example.com:5432/outpost' });
  t.same(ok.postgres, { poolSize: 10, commitConcurrency: 2, commitMaxRecords: 10_000, rollupRefreshSeconds: 60, writeTimeoutSeconds: 60 }, 'defaults');
  refused(
    { database: 'postgres://outpost:s3cret@db/outpost', postgres: { writeTimeoutSeconds: 0 } },
    /postgres\.writeTimeoutSeconds/,
    'a write timeout of 0 s',
  );
  refused({ database: 'postgres://outpost:s3cret@db/outpost', postgres: { writeTimeout: 30 } }, /writeTimeout/, 'a typo of writeTimeoutSeconds');
  refused({ database: 'postgres:///outpost' }, /database: the URL names no host/, 'no host');
  refused({ database: 'postgres://outpost:s3cret@db:port/outpost' }, /database: not a valid URL/, 'a port that is no number');
  refused(
    { database: 'postgres://outpost:s3cret@db/outpost', postgres: { passwordFile: '/etc/outpost-central/pg' } },
    /postgres\.passwordFile: the database URL carries a password already/,
    'a password twice',
  );
  const fromEnv = validateCentralConfig(
    {},
    { env: { OUTPOST_CENTRAL_DATABASE: 'postgres://outpost:s3cret@db:5432/outpost', OUTPOST_CENTRAL_POSTGRES_POOLSIZE: '4' } },
  );
  t.equal(fromEnv.database, 'postgres://outpost:s3cret@db:5432/outpost', 'the URL from OUTPOST_CENTRAL_DATABASE');
  t.equal(fromEnv.postgres.poolSize, 4);
  const socket = validateCentralConfig({ database: 'postgres:///outpost?host=/run/postgresql' });
  t.equal(socket.database, 'postgres:///outpost?host=/run/postgresql', 'a Unix socket');
});
