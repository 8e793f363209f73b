import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import pg from 'pg';
import { OutpostError } from '../../../core/errors.js';
import '../../../storage/errors.js';
import '../../errors.js';
import type { Logger } from '../../log.js';
import type { StoreHealth } from '../contract.js';

export type PoolClient = pg.PoolClient;
/** What a statement runs on: the pool (autocommit) or a client inside a transaction. */
export type Sql = Pick<pg.PoolClient, 'query'>;

export interface DatabaseOptions {
  url: string;
  /** Connections for reads (the API), background work and the other writes. */
  poolSize: number;
  /** Connections of the ingest writes (`write` with `ingest`), apart from the rest: see `Database`. */
  ingestPoolSize: number;
  log: Logger;
  /** How often a store that refuses writes tries a write again (ms). */
  probeMs: number;
  /**
   * How long each statement of a write may take (ms; PostgreSQL's `statement_timeout` for its
   * transaction); a transaction that hears nothing for twice that has its connection dropped.
   */
  writeTimeoutMs: number;
}

/**
 * SQLSTATEs that mean "the database does not take writes now" (PostgreSQL, Appendix A):
 * class 08 connection exception, 53 insufficient resources (53100 disk full), 57P01-57P03
 * (administrator or crash shutdown, cannot connect now), 58 system error (I/O), 25006
 * read-only transaction (a hot standby after a failover, `default_transaction_read_only`).
 */
const UNAVAILABLE_STATE = /^(08|53|57P0[1-3]|58|25006$)/;
/** Serialization failure and deadlock: the transaction is rolled back and may simply run again. */
const RETRY_STATES = new Set(['40001', '40P01']);
/** Socket errors of node, and node-postgres's own words for a connection that went away. */
const NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ECONNABORTED']);
const CONNECTION_WORDS =
  /Connection terminated|connection timeout|timeout exceeded when trying to connect|connection error|not queryable|Client was closed|Connection refused/i;

/**
 * query_canceled: with "statement timeout" in the message, a bounded write's `statement_timeout`
 * ran out (a lock it waited for, a server that stalls); the same code also means a cancel by
 * `pg_cancel_backend`, which is not a timeout.
 */
const QUERY_CANCELED = '57014';

/** pg-pool's words when no connection came within `connectionTimeoutMillis`. */
const POOL_TIMEOUT = /timeout exceeded when trying to connect/i;

/** The deadline's error (transaction): the database gave no answer; not worth a second try on a fresh connection. */
const NO_ANSWER = Symbol('no answer');

export type ErrorKind = 'retry' | 'unavailable' | 'no-partition' | 'timeout' | 'other';

export function errorKind(err: unknown): ErrorKind {
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : '';
  if (RETRY_STATES.has(code)) return 'retry';
  if (code === QUERY_CANCELED && /statement timeout/.test(String(e?.message))) return 'timeout';
  // 23514 is also any CHECK violation: only the routing failure of a partitioned table counts.
  if (code === '23514' && /no partition of relation/.test(String(e?.message))) return 'no-partition';
  if (UNAVAILABLE_STATE.test(code) || NODE_CODES.has(code)) return 'unavailable';
  if (code === '' && CONNECTION_WORDS.test(String(e?.message ?? err))) return 'unavailable';
  return 'other';
}

/** The URL as it may be shown: the password (in the userinfo or a `password=` parameter) replaced. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    if (u.searchParams.has('password')) u.searchParams.set('password', '***');
    return u.toString();
  } catch {
    return 'postgres://(unparsable URL)';
  }
}

/** The URL with `password` in it (from `postgres.passwordFile`), %-encoded as a URL needs. */
export function urlWithPassword(url: string, password: string): string {
  const u = new URL(url);
  u.password = encodeURIComponent(password);
  return u.toString();
}

/** Every form of the URL's password, to be cut out of any text that leaves the store (error messages, logs). */
function secretsOf(url: string): string[] {
  const out = new Set<string>();
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    // The config refuses unparsable URLs; should one get here, the whole of it is the secret.
    return [url];
  }
  for (const raw of [u.password, u.searchParams.get('password') ?? '']) {
    if (!raw) continue;
    out.add(raw);
    out.add(decodeOr(raw));
  }
  return [...out];
}

function decodeOr(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    // A malformed %-escape: node-postgres then uses it as written, which is already in the list.
    return raw;
  }
}

/**
 * The pool and what every part of the store needs of it: transactions, error kinds, and the
 * store's health. A write that fails because the database refuses writes (connection lost,
 * disk full, a read-only standby) puts the store in the read-only state; from then on writes
 * are refused at once (as the embedded store does, storage/DESIGN.md "Full disk") and a probe
 * writes a row every `probeMs` until it succeeds, which ends the state by itself.
 */
export class Database {
  readonly pool: pg.Pool;
  /**
   * The ingest writes' own connections (readings and statuses, as many as their group commits
   * run at once), and the ones of what ingest needs besides: partitions made on demand and the
   * probe that ends the read-only state. On one pool, a burst of slow API reads held every
   * connection and the ingest transactions queued behind them: PUBACKs and HTTP answers
   * waited, and after the pool's connect timeout the store went read-only
   * (test/central/postgres-store.test.ts). A connect timeout of a pool whose connections are
   * all in use is `CENTRAL_BUSY` (retry later), not the database gone (`busy`).
   */
  readonly ingestPool: pg.Pool;
  readonly log: Logger;
  /** Names this process in `outpost.store_probe` (one row per process, refreshed by the probe). */
  readonly process = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  private readonly secrets: string[];
  private failure: { error: string; since: number } | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private probing = false;
  private closed = false;
  /** Set once the schema exists: the probe writes into it. */
  ready = false;

  constructor(private readonly o: DatabaseOptions) {
    this.log = o.log;
    this.secrets = secretsOf(o.url);
    this.pool = this.newPool(o.poolSize, 'outpost-central');
    this.ingestPool = this.newPool(o.ingestPoolSize, 'outpost-central-ingest');
  }

  /** Whether `err` is a connect timeout of a pool with every connection in use: busy, not unreachable. */
  private busy(err: unknown, pool: pg.Pool): boolean {
    const max = pool === this.pool ? this.o.poolSize : this.o.ingestPoolSize;
    return POOL_TIMEOUT.test(String((err as Error | null)?.message ?? err)) && pool.totalCount >= max;
  }

  private busyError(err: unknown, pool: pg.Pool): OutpostError {
    const which = pool === this.pool ? 'postgres.poolSize' : 'ingest';
    return new OutpostError('CENTRAL_BUSY', `PostgreSQL: every connection of this process (${which}) stayed in use; retry later`, { cause: err });
  }

  private newPool(max: number, applicationName: string): pg.Pool {
    const pool = new pg.Pool({
      connectionString: this.o.url,
      max,
      connectionTimeoutMillis: 5000,
      idleTimeoutMillis: 30_000,
      application_name: applicationName,
      keepAlive: true,
    });
    // An idle connection that breaks (the server restarted, a failover) is reported here; without
    // a listener node would crash. It says nothing of writes yet: the probe finds out.
    pool.on('error', (err) => {
      this.log.warn({ err: this.redact(err.message) }, 'PostgreSQL: an idle connection failed');
      this.probeSoon(0);
    });
    return pool;
  }

  /** Text with the password cut out. */
  redact(text: string): string {
    let out = text;
    for (const s of this.secrets) out = out.split(s).join('***');
    return out;
  }

  message(err: unknown): string {
    return this.redact(err instanceof Error ? err.message : String(err));
  }

  health(): StoreHealth {
    return this.failure ? { state: 'read-only', error: this.failure.error } : { state: 'ok' };
  }

  /**
   * Runs `fn` in one transaction on one pooled connection; a broken connection is not returned
   * to the pool. With `deadlineMs`, a transaction that hears nothing from the server for that
   * long has its connection dropped: what it waits for fails with ETIMEDOUT (a database that
   * stopped answering — a frozen VM, a firewall that silently drops the connection — would
   * otherwise hold it for ever: TCP keepalive takes hours by default), and PostgreSQL rolls it
   * back once it notices. The clock starts again with every answer, so a transaction of many
   * statements, each slow but answered, is not cut.
   */
  async transaction<T>(fn: (c: PoolClient) => Promise<T>, begin = 'BEGIN', deadlineMs?: number, pool = this.pool): Promise<T> {
    return this.onConnection(pool, deadlineMs, begin, fn);
  }

  /**
   * One statement on a pooled connection of the API's pool, outside a transaction: the reads.
   * Under the writes' deadline for silence (`transaction`): after a network freeze the pool's
   * idle connections stay silent for ever, and a read given one would wait for ever.
   */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string | pg.QueryConfig, values?: unknown[]): Promise<pg.QueryResult<R>> {
    return this.onConnection(this.pool, 2 * this.o.writeTimeoutMs, null, (c) => c.query<R>(text as string, values));
  }

  /** `fn` on a connection of `pool`, in a transaction begun with `begin` (null: none), under the deadline. */
  private async onConnection<T>(pool: pg.Pool, deadlineMs: number | undefined, begin: string | null, fn: (c: PoolClient) => Promise<T>): Promise<T> {
    const client = await pool.connect();
    // node-postgres's socket: its own way to end a connection that cannot be ended politely (client.js, query_timeout).
    const socket = (client as unknown as { connection: { stream: NodeJS.EventEmitter & { destroy(err: Error): void } } }).connection.stream;
    let broken = false;
    const deadline =
      deadlineMs === undefined
        ? undefined
        : setTimeout(() => {
            broken = true;
            this.log.warn({ deadlineMs }, 'PostgreSQL: a connection got no answer in time; it is dropped');
            socket.destroy(Object.assign(new Error(`PostgreSQL did not answer within ${deadlineMs} ms`), { code: 'ETIMEDOUT', [NO_ANSWER]: true }));
          }, deadlineMs);
    const heard = () => deadline?.refresh();
    if (deadline) socket.on('data', heard);
    // A checked-out client whose connection breaks between two queries (the server shut down:
    // 57P01) emits 'error' itself — the pool listens only to idle ones — and node would crash.
    // The query in flight, or the next one, fails with it and is handled below.
    const onError = (err: Error) => {
      broken = true;
      this.log.debug({ err: this.message(err) }, 'PostgreSQL: a connection in use failed');
    };
    client.on('error', onError);
    try {
      if (begin !== null) await client.query(begin);
      const out = await fn(client);
      if (begin !== null) await client.query('COMMIT');
      return out;
    } catch (err) {
      broken ||= errorKind(err) === 'unavailable';
      if (!broken && begin !== null)
        await client.query('ROLLBACK').catch((rollbackErr: Error) => {
          broken = true;
          this.log.debug({ err: this.message(rollbackErr) }, 'PostgreSQL: rollback failed, connection dropped');
        });
      throw err;
    } finally {
      clearTimeout(deadline);
      socket.off('data', heard);
      client.off('error', onError);
      client.release(broken);
    }
  }

  /**
   * A write: refused at once while read-only; run in a transaction, again after a deadlock or
   * serialization failure, and once more after a lost connection when `idempotent` (a COMMIT
   * whose answer was lost may have committed: only writes that may run twice are repeated).
   * `prepare` runs first, in transactions of its own (a week's partitions), under the same
   * rules; `onNoPartition` repairs a missing partition before the next try. `bounded` (the
   * ingest's writes, which hold a gateway's message until they end): each statement may take
   * `writeTimeoutMs` (PostgreSQL's `statement_timeout`: a timeout fails this write alone), and
   * a transaction that hears nothing for twice that has its connection dropped (the database
   * gave no answer: the store goes read-only at once, without the second try). The rollup refresh is not bounded:
   * a round over a backlog may rightly take long. `ingest` (readings and statuses): on the
   * ingest's own connections (`ingestPool`).
   */
  async write<T>(
    what: string,
    fn: (c: PoolClient) => Promise<T>,
    opts: { idempotent: boolean; bounded?: boolean; ingest?: boolean; prepare?: () => Promise<void>; onNoPartition?: () => Promise<void> },
  ): Promise<T> {
    const pool = opts.ingest ? this.ingestPool : this.pool;
    if (this.closed) throw new OutpostError('STORAGE_CLOSED', 'the PostgreSQL store is closed');
    if (this.failure) throw new OutpostError('STORAGE_WRITE_FAILED', `PostgreSQL refuses writes (${this.failure.error}); writes resume once it recovers`);
    let lostConnection = false;
    let repairedPartition = false;
    for (let attempt = 0; ; attempt++) {
      try {
        // Work of its own transaction that the write needs first (a week's partitions).
        if (opts.prepare) await opts.prepare();
        if (!opts.bounded) return await this.transaction(fn, 'BEGIN', undefined, pool);
        const timeout = this.o.writeTimeoutMs;
        return await this.transaction(fn, `BEGIN; SET LOCAL statement_timeout = ${timeout}`, 2 * timeout, pool);
      } catch (err) {
        if (this.busy(err, pool)) throw this.busyError(err, pool);
        const kind = errorKind(err);
        if (kind === 'retry' && attempt < 5) {
          await sleep(5 + Math.random() * 20 * (attempt + 1));
          continue;
        }
        if (kind === 'no-partition' && opts.onNoPartition && !repairedPartition) {
          repairedPartition = true;
          await opts.onNoPartition();
          continue;
        }
        if (kind === 'timeout')
          // Not the database refusing writes: this one write waited too long. Its caller
          // answers "retry later" (503, no PUBACK) and the gateway sends it again.
          throw new OutpostError(
            'STORAGE_WRITE_FAILED',
            `${what}: PostgreSQL did not finish a statement within ${this.o.writeTimeoutMs} ms; nothing of it was stored`,
            {
              cause: err,
            },
          );
        if (kind === 'unavailable' && opts.idempotent && !lostConnection && !(err as { [NO_ANSWER]?: boolean })[NO_ANSWER]) {
          // A pooled connection that died with the server's restart: one fresh try.
          lostConnection = true;
          continue;
        }
        if (kind === 'unavailable') {
          this.fail(`${what}: ${this.message(err)}`);
          throw new OutpostError('STORAGE_WRITE_FAILED', `PostgreSQL refused the write (${this.message(err)})`, { cause: err });
        }
        throw this.clean(err);
      }
    }
  }

  /** A read: a lost database is 503 (retry later) and starts the probe; anything else is thrown as it is, redacted. */
  async read<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new OutpostError('STORAGE_CLOSED', 'the PostgreSQL store is closed');
    try {
      return await fn();
    } catch (err) {
      if (this.busy(err, this.pool)) throw this.busyError(err, this.pool);
      if (errorKind(err) === 'unavailable') {
        this.probeSoon(0);
        throw new OutpostError('CENTRAL_STORE_UNAVAILABLE', `PostgreSQL: ${this.message(err)}`, { cause: err });
      }
      throw this.clean(err);
    }
  }

  /** An error as it may leave the store: its message without the password. */
  clean(err: unknown): unknown {
    if (err instanceof Error) {
      const text = this.redact(err.message);
      if (text !== err.message) err.message = text;
    }
    return err;
  }

  /** Enters (or stays in) the read-only state and probes until a write succeeds. */
  fail(error: string): void {
    if (!this.failure) {
      this.failure = { error, since: Date.now() };
      this.log.error({ err: error }, 'PostgreSQL refuses writes: the store is read-only until a write succeeds again');
    } else this.failure.error = error;
    this.probeSoon(this.o.probeMs);
  }

  /** Schedules a probe (one at a time). */
  probeSoon(delayMs: number): void {
    if (this.closed || this.probeTimer || this.probing) return;
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined;
      void this.probe();
    }, delayMs);
    this.probeTimer.unref();
  }

  /** Writes this process's probe row; success ends the read-only state, failure enters it. */
  async probe(): Promise<boolean> {
    if (this.closed || this.probing) return this.failure === undefined;
    this.probing = true;
    try {
      // Under the writes' deadline: a probe on a connection that went silent would otherwise hang,
      // and with it the read-only state it is there to end.
      await this.transaction(
        (c) =>
          this.ready
            ? c.query('INSERT INTO outpost.store_probe (process, at) VALUES ($1, now()) ON CONFLICT (process) DO UPDATE SET at = excluded.at', [this.process])
            : c.query('SELECT 1'),
        'BEGIN',
        2 * this.o.writeTimeoutMs,
        // On ingest's connections: what it tells is whether ingest can write, and busy API
        // reads must not make it fail.
        this.ingestPool,
      );
      // Then the API's pool: its idle connections went through the same outage, and one that
      // stays silent is dropped here at its deadline, one a round, until one answers (reads
      // given them would fail meanwhile). A pool busy with reads is no failure.
      await this.query('SELECT 1').catch((err: unknown) => {
        if (!this.busy(err, this.pool)) throw err;
      });
      if (this.failure) {
        this.log.info({ after: Date.now() - this.failure.since }, 'PostgreSQL takes writes again');
        this.failure = undefined;
      }
      return true;
    } catch (err) {
      // Any failure of this one-row write means writes are not taken now.
      this.fail(`probe: ${this.message(err)}`);
      return false;
    } finally {
      this.probing = false;
      if (this.failure) this.probeSoon(this.o.probeMs);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.probeTimer = undefined;
    await Promise.all([this.pool.end(), this.ingestPool.end()]);
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Epoch ms as the seconds `to_timestamp(float8)` takes: the division PostgreSQL would do, exact to the microsecond after its rounding. */
export const seconds = (ms: number): number => ms / 1000;

/** `round(date_part('epoch', t) * 1000)` comes back as a float8: epoch ms. */
export const EPOCH_MS = (column: string): string => `round(date_part('epoch', ${column}) * 1000)`;
