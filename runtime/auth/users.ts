import { readFileSync, statSync, type Stats } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { OutpostError } from '../../core/errors.js';
import { writeFileDurably } from '../durable-file.js';
import { hashPassword, hashToken, isPasswordHash, verifyPassword } from './passwords.js';
import { ROLES, type Role } from './roles.js';

export const USERNAME = /^[a-z0-9][a-z0-9_.@-]{0,63}$/;
const MIN_PASSWORD_LENGTH = 10;
const MAX_PASSWORD_LENGTH = 256;
/** A token is `opt_<id>_<secret>` so the id is visible in logs without the secret. */
const TOKEN_FORMAT = /^opt_([a-z0-9]{8})_([A-Za-z0-9_-]{32,})$/;
/** Bounds the file (and memory) on a small device. */
const MAX_USERS = 200;
const MAX_TOKENS = 200;

const UserRecord = z.strictObject({
  username: z.string().regex(USERNAME),
  role: z.enum(ROLES),
  passwordHash: z.string().refine(isPasswordHash),
  createdAt: z.number(),
  updatedAt: z.number(),
});
const TokenRecord = z.strictObject({
  id: z.string().regex(/^[a-z0-9]{8}$/),
  name: z.string().min(1).max(64),
  role: z.enum(ROLES),
  hash: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  createdBy: z.string(),
  createdAt: z.number(),
});
const AuthFile = z.strictObject({ version: z.literal(1), users: z.array(UserRecord), tokens: z.array(TokenRecord) });

type UserRecord = z.infer<typeof UserRecord>;
type TokenRecord = z.infer<typeof TokenRecord>;

/** What the API shows of a user: never the hash. */
export interface PublicUser {
  username: string;
  role: Role;
  createdAt: number;
  updatedAt: number;
}
export interface PublicToken {
  id: string;
  name: string;
  role: Role;
  createdBy: string;
  createdAt: number;
}

function publicUser(u: UserRecord): PublicUser {
  return { username: u.username, role: u.role, createdAt: u.createdAt, updatedAt: u.updatedAt };
}
function publicToken(t: TokenRecord): PublicToken {
  return { id: t.id, name: t.name, role: t.role, createdBy: t.createdBy, createdAt: t.createdAt };
}

function checkPassword(password: unknown): string {
  if (typeof password !== 'string') throw new OutpostError('BAD_REQUEST', '"password" must be a string');
  if (password.length < MIN_PASSWORD_LENGTH) throw new OutpostError('BAD_REQUEST', `password must have at least ${MIN_PASSWORD_LENGTH} characters`);
  if (password.length > MAX_PASSWORD_LENGTH) throw new OutpostError('BAD_REQUEST', `password must have at most ${MAX_PASSWORD_LENGTH} characters`);
  return password;
}

function checkUsername(username: unknown): string {
  if (typeof username !== 'string' || !USERNAME.test(username)) {
    throw new OutpostError('BAD_REQUEST', 'username must be 1-64 lower-case letters, digits, or . _ @ - (starting with a letter or digit)');
  }
  return username;
}

function checkRole(role: unknown): Role {
  if (typeof role !== 'string' || !(ROLES as readonly string[]).includes(role))
    throw new OutpostError('BAD_REQUEST', `role must be one of ${ROLES.join(', ')}`);
  return role as Role;
}

/**
 * Users and API tokens of the dashboard and REST API, in one JSON file in the data dir
 * (mode 0600, replaced atomically). The file is re-read when it changed on disk, so
 * `outpost user add` works while the gateway runs. Writes are serialised.
 */
export class UserStore {
  private users = new Map<string, UserRecord>();
  private tokens = new Map<string, TokenRecord>();
  private mtimeMs = -1;
  private writing: Promise<void> = Promise.resolve();
  /** Verified against for unknown usernames, so timing does not reveal which names exist. */
  private dummyHash: Promise<string> | undefined;

  constructor(
    readonly path: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** Loads the file (absent = no users yet). A damaged file is an error, never "no users". */
  load(): void {
    let stat: Stats;
    try {
      stat = statSync(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        this.users.clear();
        this.tokens.clear();
        this.mtimeMs = 0;
        return;
      }
      throw err;
    }
    if (stat.mtimeMs === this.mtimeMs) return;
    let parsed: z.infer<typeof AuthFile>;
    try {
      parsed = AuthFile.parse(JSON.parse(readFileSync(this.path, 'utf8')));
    } catch (err) {
      throw new OutpostError('CONFIG_INVALID', `user file ${this.path} is damaged: ${(err as Error).message.slice(0, 200)}`, { cause: err });
    }
    this.users = new Map(parsed.users.map((u) => [u.username, u]));
    this.tokens = new Map(parsed.tokens.map((t) => [t.hash, t]));
    this.mtimeMs = stat.mtimeMs;
  }

  private async save(): Promise<void> {
    const body = JSON.stringify({ version: 1, users: [...this.users.values()], tokens: [...this.tokens.values()] }, null, 2);
    await mkdir(dirname(this.path), { recursive: true });
    await writeFileDurably(this.path, body + '\n', { mode: 0o600 });
    this.mtimeMs = statSync(this.path).mtimeMs;
  }

  /** Runs a change on fresh state and saves; changes never interleave. */
  private mutate<T>(change: () => Promise<T> | T): Promise<T> {
    const run = this.writing.then(async () => {
      this.load();
      const result = await change();
      await this.save();
      return result;
    });
    this.writing = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  get userCount(): number {
    this.load();
    return this.users.size;
  }

  listUsers(): PublicUser[] {
    this.load();
    return [...this.users.values()].map(publicUser).sort((a, b) => a.username.localeCompare(b.username));
  }

  getUser(username: string): PublicUser | undefined {
    this.load();
    const u = this.users.get(username);
    return u && publicUser(u);
  }

  async addUser(input: { username: unknown; role: unknown; password: unknown }): Promise<PublicUser> {
    const username = checkUsername(input.username);
    const role = checkRole(input.role);
    const password = checkPassword(input.password);
    return this.mutate(async () => {
      if (this.users.has(username)) throw new OutpostError('AUTH_CONFLICT', `user "${username}" already exists`);
      if (this.users.size >= MAX_USERS) throw new OutpostError('AUTH_CONFLICT', `at most ${MAX_USERS} users`);
      const now = this.now();
      const rec: UserRecord = { username, role, passwordHash: await hashPassword(password), createdAt: now, updatedAt: now };
      this.users.set(username, rec);
      return publicUser(rec);
    });
  }

  /** Changes role and/or password; the last admin cannot be demoted. */
  async updateUser(username: string, change: { role?: unknown; password?: unknown }): Promise<PublicUser> {
    const role = change.role === undefined ? undefined : checkRole(change.role);
    const password = change.password === undefined ? undefined : checkPassword(change.password);
    return this.mutate(async () => {
      const rec = this.users.get(username);
      if (!rec) throw new OutpostError('NOT_FOUND', `no user "${username}"`);
      if (role && role !== 'admin' && rec.role === 'admin' && this.adminCount() === 1) {
        throw new OutpostError('AUTH_CONFLICT', 'the last admin cannot be demoted: make another admin first');
      }
      const next: UserRecord = { ...rec, role: role ?? rec.role, updatedAt: this.now() };
      if (password) next.passwordHash = await hashPassword(password);
      this.users.set(username, next);
      return publicUser(next);
    });
  }

  removeUser(username: string): Promise<void> {
    return this.mutate(() => {
      const rec = this.users.get(username);
      if (!rec) throw new OutpostError('NOT_FOUND', `no user "${username}"`);
      if (rec.role === 'admin' && this.adminCount() === 1) throw new OutpostError('AUTH_CONFLICT', 'the last admin cannot be removed');
      this.users.delete(username);
    });
  }

  private adminCount(): number {
    let n = 0;
    for (const u of this.users.values()) if (u.role === 'admin') n++;
    return n;
  }

  /** The user when the password is right; undefined otherwise (same cost either way). */
  async verifyLogin(username: string, password: string): Promise<PublicUser | undefined> {
    this.load();
    const rec = this.users.get(username);
    if (!rec) {
      this.dummyHash ??= hashPassword(randomBytes(16).toString('hex'));
      await verifyPassword(password, await this.dummyHash);
      return undefined;
    }
    return (await verifyPassword(password, rec.passwordHash)) ? publicUser(rec) : undefined;
  }

  /**
   * Creates the first admin when there are no users: with the given password or hash,
   * else with a generated password that the caller shows once. Does nothing otherwise.
   */
  async ensureInitialAdmin(options: { username: string; password?: string; passwordHash?: string }): Promise<{ created: boolean; generatedPassword?: string }> {
    this.load();
    if (this.users.size > 0) return { created: false };
    const username = checkUsername(options.username);
    const generated = options.password === undefined && options.passwordHash === undefined ? randomBytes(12).toString('base64url') : undefined;
    const hash = options.passwordHash ?? (await hashPassword(checkPassword(options.password ?? generated)));
    return this.mutate(() => {
      if (this.users.size > 0) return { created: false };
      const now = this.now();
      this.users.set(username, { username, role: 'admin', passwordHash: hash, createdAt: now, updatedAt: now });
      return generated ? { created: true, generatedPassword: generated } : { created: true };
    });
  }

  listTokens(): PublicToken[] {
    this.load();
    return [...this.tokens.values()].map(publicToken).sort((a, b) => a.createdAt - b.createdAt);
  }

  /** Makes a machine token; the secret is returned once and only its hash is kept. */
  async createToken(input: { name: unknown; role: unknown; createdBy: string }): Promise<{ token: string } & PublicToken> {
    if (typeof input.name !== 'string' || input.name.length < 1 || input.name.length > 64)
      throw new OutpostError('BAD_REQUEST', '"name" must be 1-64 characters');
    const name = input.name;
    const role = checkRole(input.role);
    return this.mutate(() => {
      if (this.tokens.size >= MAX_TOKENS) throw new OutpostError('AUTH_CONFLICT', `at most ${MAX_TOKENS} tokens`);
      const id = randomBytes(5).toString('hex').slice(0, 8);
      const token = `opt_${id}_${randomBytes(24).toString('base64url')}`;
      const rec: TokenRecord = { id, name, role, hash: hashToken(token), createdBy: input.createdBy, createdAt: this.now() };
      this.tokens.set(rec.hash, rec);
      return { token, ...publicToken(rec) };
    });
  }

  revokeToken(id: string): Promise<void> {
    return this.mutate(() => {
      const rec = [...this.tokens.values()].find((t) => t.id === id);
      if (!rec) throw new OutpostError('NOT_FOUND', `no token "${id}"`);
      this.tokens.delete(rec.hash);
    });
  }

  /** The token's record when the bearer secret is one of ours. */
  verifyToken(token: string): PublicToken | undefined {
    if (!TOKEN_FORMAT.test(token)) return undefined;
    this.load();
    const hash = hashToken(token);
    const rec = this.tokens.get(hash);
    // The map lookup is by hash of a high-entropy secret; compare again in constant time.
    return rec && timingSafeEqual(Buffer.from(rec.hash), Buffer.from(hash)) ? publicToken(rec) : undefined;
  }
}
