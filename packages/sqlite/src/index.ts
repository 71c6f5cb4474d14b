import { closeSync, lstatSync, readSync, renameSync } from "node:fs";
import { dirname, resolve } from "node:path";
import {
  assertCacheKey,
  assertLockTtl,
  CacheArgumentError,
  CacheConfigError,
  type CacheLock,
  CacheUnavailableError,
  type Clock,
  CredcacheError,
  type CredentialCache,
  describeValue,
  expiresAtFromTtl,
  newLockToken,
} from "@credcache/core";
import { type TrustedDirectory, trustedDirectory } from "@credcache/trusted-path";
import Database from "better-sqlite3";
import { checkSidecars, openDatabaseFile, openDescriptors, SIDECARS, verifyOpened } from "./files.js";
import { betterSqliteAddon } from "./native.js";
import { migrate, SCHEMA_VERSION } from "./schema.js";

export { SCHEMA_VERSION };

/** Options of {@link sqliteCache}. */
export interface SqliteCacheOptions {
  /**
   * The database file. Created 0600 (with its `-wal` and `-shm` files) whatever the
   * umask; its directory is created 0700 when missing. Give each application its own file.
   *
   * Refused (every call rejects with `CacheUnavailableError`, which `fromCache` reports and
   * bypasses) when the directory is a symlink, is not the current user's or is writable by
   * group or others; when any directory above it, up to `/`, is writable by anyone but
   * root and the current user without being sticky and owned by one of them; or when the
   * file, or a `-wal`, `-shm` or `-journal` beside it, is a symlink, not a regular file,
   * not the current user's, or has more than one link.
   */
  path: string;
  /**
   * Source of time for entry TTLs and lock leases. Inject one in tests instead of sleeping.
   * @default Date
   */
  clock?: Clock;
  /**
   * How long a call waits for another connection's write lock before it gives up and
   * rejects (`fromCache` then goes on without the cache for that call). better-sqlite3 is
   * synchronous, so this also bounds how long a call can block the event loop; keep it at
   * or below `fromCache`'s `cacheTimeoutMs`.
   * @default 1000
   */
  busyTimeoutMs?: number;
}

/** A {@link CredentialCache} in one SQLite file, shared by every process on a host. */
export interface SqliteCache extends CredentialCache {
  /** The absolute path of the database file. */
  readonly path: string;
  acquireLock(key: string, opts: { ttlMs: number }): Promise<CacheLock | undefined>;
  /**
   * The keys of the unexpired entries, as given to `set` (lock leases live in their own
   * table and are never listed). A read: it never waits for a writer.
   */
  keys(): Promise<string[]>;
  /** Deletes expired entries and expired lock leases. Resolves to the number of entries deleted. */
  prune(): Promise<number>;
  /** Closes the connection. Later calls reject; a held lock's lease simply runs out. */
  close(): Promise<void>;
}

/**
 * How long opening may wait to switch a new file to WAL (a file already in WAL mode on
 * disk waits only `busyTimeoutMs`). Switching takes an exclusive lock, and SQLite can
 * answer SQLITE_BUSY to it at once instead of waiting in its busy handler; when 64
 * processes open a new file at once, one of them sometimes got that error and went
 * without its store for its first call (and fetched credentials on its own).
 */
const WAL_SWITCH_WAIT_MS = 5_000;
const sleepCell = new Int32Array(new SharedArrayBuffer(4));

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === "string" && (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED"));
}

/** Whether the file's header says WAL (bytes 18 and 19 are 2), read before SQLite opens it. */
function walOnDisk(fd: number, size: number): boolean {
  if (size < 100) return false;
  const header = Buffer.alloc(2);
  return readSync(fd, header, 0, 2, 18) === 2 && header[0] === 2 && header[1] === 2;
}

/** Puts the database in WAL mode unless it already is, retrying while another process holds it. */
function useWal(db: Database.Database, waitMs: number): void {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      // Reading the mode first: once a file is in WAL mode, opening it takes no exclusive lock.
      if (String(db.pragma("journal_mode", { simple: true })).toLowerCase() !== "wal") {
        db.pragma("journal_mode = WAL");
      }
      return;
    } catch (error) {
      if (!isBusy(error) || Date.now() >= deadline) throw error;
      // better-sqlite3 is synchronous, and so is SQLite's own busy handler: sleep the same way.
      Atomics.wait(sleepCell, 0, 0, 5 + Math.random() * 10);
    }
  }
}

/** The inode at `path` itself (a symlink's own, never its target's). */
function fileId(path: string): number | undefined {
  return lstatSync(path, { throwIfNoEntry: false })?.ino;
}

function serialize(value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw new CacheArgumentError(
      `value must be JSON-serializable (${error instanceof Error ? error.name : "error"})`,
    );
  }
  if (text === undefined)
    throw new CacheArgumentError(`value must be JSON-serializable, got ${typeof value}`);
  return text;
}

class SqliteStore implements SqliteCache {
  /** Every process on this host that passes the directory checks shares it. */
  readonly scope = "host" as const;
  readonly path: string;
  readonly #clock: Clock;
  readonly #busyTimeoutMs: number;
  readonly #directory: TrustedDirectory;
  #db: Database.Database | undefined;
  #statements: Statements | undefined;
  /** The inode opened, to notice the file being replaced or removed under us. */
  #fileId: number | undefined;
  #sidecarsSecured = false;
  #closed = false;

  constructor(options: SqliteCacheOptions) {
    const { path, clock = Date, busyTimeoutMs = 1000 } = options ?? ({} as SqliteCacheOptions);
    if (typeof path !== "string" || path === "" || path === ":memory:") {
      throw new CacheConfigError(
        `sqliteCache: "path" must be a database file, e.g. "/var/cache/credcache.db", got ${describeValue(path)}` +
          (path === ":memory:" ? " (for an in-process cache use @credcache/memory)" : ""),
      );
    }
    if (typeof clock?.now !== "function") {
      throw new CacheConfigError('sqliteCache: "clock" must have a now() method returning epoch ms');
    }
    if (typeof busyTimeoutMs !== "number" || !Number.isInteger(busyTimeoutMs) || busyTimeoutMs < 0) {
      throw new CacheConfigError(
        `sqliteCache: "busyTimeoutMs" must be a non-negative integer of milliseconds, got ${busyTimeoutMs}`,
      );
    }
    this.path = resolve(path);
    this.#clock = clock;
    this.#busyTimeoutMs = busyTimeoutMs;
    this.#directory = trustedDirectory(dirname(this.path), {
      store: "@credcache/sqlite",
      what: "database directory",
    });
  }

  async get(key: string): Promise<unknown | undefined> {
    assertCacheKey(key);
    let row: [string, number | null] | undefined;
    try {
      row = (this.#statements ?? this.#open()).get.get(key);
    } catch (error) {
      this.#fail("get", error);
    }
    if (row === undefined) return undefined;
    // Expired rows are left for the next write to purge: the read path never writes,
    // so in WAL mode it never waits for another process.
    if (row[1] !== null && row[1] <= this.#clock.now()) return undefined;
    try {
      return JSON.parse(row[0]);
    } catch {
      // The parser's message quotes the value, which may hold a secret: leave it out.
      throw new CacheUnavailableError(`sqlite cache "${this.path}": the value under this key is not JSON`);
    }
  }

  async set(key: string, value: unknown, ttlSeconds?: number): Promise<void> {
    assertCacheKey(key);
    const now = this.#clock.now();
    const expiresAt = expiresAtFromTtl(ttlSeconds, now) ?? null;
    const text = serialize(value);
    try {
      this.#writable().write(key, text, expiresAt, now);
    } catch (error) {
      this.#fail("set", error);
    }
    if (!this.#sidecarsSecured) {
      this.#sidecarsSecured = true;
      // SQLite gives -wal and -shm the database file's mode; this makes sure, by descriptor.
      checkSidecars(this.path);
    }
  }

  async remove(key: string): Promise<void> {
    assertCacheKey(key);
    try {
      this.#writable().remove.run(key);
    } catch (error) {
      this.#fail("remove", error);
    }
  }

  async acquireLock(key: string, opts: { ttlMs: number }): Promise<CacheLock | undefined> {
    assertCacheKey(key);
    assertLockTtl(opts?.ttlMs);
    const token = newLockToken();
    const now = this.#clock.now();
    let taken: { takenOver: boolean } | undefined;
    try {
      taken = this.#writable().takeLease(key, token, now + opts.ttlMs, now);
    } catch (error) {
      this.#fail("acquireLock", error);
    }
    if (!taken) return undefined;
    let released = false;
    return {
      takenOver: taken.takenOver,
      release: async () => {
        if (released || this.#closed) return;
        try {
          // Deletes only our own lease: after a takeover the row holds the new holder's token.
          (this.#statements ?? this.#open()).releaseLease.run(key, token);
        } catch (error) {
          this.#fail("release", error);
        }
        released = true;
      },
    };
  }

  async keys(): Promise<string[]> {
    try {
      return (this.#statements ?? this.#open()).keys.all(this.#clock.now());
    } catch (error) {
      this.#fail("keys", error);
    }
  }

  async prune(): Promise<number> {
    try {
      return this.#writable().prune(this.#clock.now());
    } catch (error) {
      this.#fail("prune", error);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#drop();
  }

  /** Opens the connection: file and directory permissions, WAL, schema, statements. */
  #open(): Statements {
    if (this.#closed) throw new CacheUnavailableError(`sqlite cache "${this.path}" is closed`);
    const path = this.path;
    this.#directory.verify();
    checkSidecars(path);
    // Create the file ourselves so that it is 0600 whatever the umask (SQLite gives the
    // -wal and -shm files the database file's mode), and check, before SQLite opens it, that
    // it is a regular file of ours, not a symlink someone planted. The descriptor stays
    // open until SQLite has opened the path, to check it opened this very file.
    const { fd, stat } = openDatabaseFile(path);
    let db: Database.Database;
    let walWaitMs: number;
    try {
      // Known before SQLite reads the file, so that a corrupt one can be told from a
      // fresh one another process has put in its place meanwhile.
      this.#fileId = stat.ino;
      walWaitMs = walOnDisk(fd, stat.size)
        ? this.#busyTimeoutMs
        : Math.max(this.#busyTimeoutMs, WAL_SWITCH_WAIT_MS);
      const before = openDescriptors();
      db = new Database(path, { timeout: this.#busyTimeoutMs, nativeBinding: betterSqliteAddon() });
      try {
        verifyOpened(path, stat, before);
      } catch (error) {
        db.close();
        throw error;
      }
    } finally {
      closeSync(fd);
    }
    let statements: Statements;
    try {
      useWal(db, walWaitMs);
      db.pragma("synchronous = NORMAL");
      migrate(db);
      statements = new Statements(db);
    } catch (error) {
      db.close();
      throw error;
    }
    checkSidecars(path);
    this.#db = db;
    this.#statements = statements;
    this.#sidecarsSecured = false;
    return statements;
  }

  /**
   * The connection for a write or a lock. If the file was replaced (another process moved
   * a corrupt one aside) or removed, reopen, or this process would lock and write a file
   * nobody else reads.
   */
  #writable(): Statements {
    const statements = this.#statements;
    this.#directory.verify();
    if (statements !== undefined && fileId(this.path) === this.#fileId) return statements;
    this.#drop();
    return this.#open();
  }

  #drop(): void {
    const db = this.#db;
    this.#db = undefined;
    this.#statements = undefined;
    this.#fileId = undefined;
    try {
      db?.close();
    } catch {
      // Closing a broken connection can fail too; it is gone either way.
    }
  }

  /**
   * Turns any failure into a `CacheUnavailableError` naming the file and the reason, and
   * recovers for the next call: a busy database is simply tried again, a corrupt one is
   * moved aside and replaced, anything else gets a fresh connection.
   */
  #fail(operation: string, error: unknown): never {
    if (error instanceof CredcacheError) throw error;
    const code = (error as { code?: unknown } | undefined)?.code;
    const reason = error instanceof Error ? error.message : String(error);
    const where = `sqlite cache "${this.path}"`;
    if (isBusy(error)) {
      throw new CacheUnavailableError(
        `${where}: ${operation} skipped, the database is locked by another connection (${reason}, ${code}); ` +
          "the next call tries again",
        { cause: error },
      );
    }
    if (code === "SQLITE_NOTADB" || (typeof code === "string" && code.startsWith("SQLITE_CORRUPT"))) {
      const aside = this.#quarantine();
      throw new CacheUnavailableError(
        `${where}: ${operation} failed, the database is unusable (${reason}, ${code}); ` +
          (aside ? `moved it aside to "${aside}", ` : "") +
          "the next call starts a fresh database",
        { cause: error },
      );
    }
    this.#drop();
    throw new CacheUnavailableError(
      `${where}: ${operation} failed (${reason}${typeof code === "string" ? `, ${code}` : ""})`,
      { cause: error },
    );
  }

  /** Moves a corrupt database and its -wal/-shm aside, unless another process already did. */
  #quarantine(): string | undefined {
    const opened = this.#fileId;
    this.#drop();
    const current = fileId(this.path);
    if (current === undefined || (opened !== undefined && current !== opened)) return undefined;
    const aside = `${this.path}.corrupt-${Date.now()}`;
    try {
      renameSync(this.path, aside);
    } catch {
      return undefined;
    }
    for (const suffix of SIDECARS) {
      try {
        renameSync(this.path + suffix, aside + suffix);
      } catch {
        // No such file.
      }
    }
    return aside;
  }
}

/**
 * The store's statements, each prepared when first used: a warm `get`, often all a process
 * does, needs only its own, and the transactions' prepare nine more of better-sqlite3's.
 */
class Statements {
  readonly #db: Database.Database;
  #get: Database.Statement<[string], [string, number | null]> | undefined;
  #keys: Database.Statement<[number], string> | undefined;
  #write: ((key: string, value: string, expiresAt: number | null, now: number) => void) | undefined;
  #remove: Database.Statement<[string]> | undefined;
  #takeLease:
    | ((key: string, token: string, expiresAt: number, now: number) => { takenOver: boolean } | undefined)
    | undefined;
  #releaseLease: Database.Statement<[string, string]> | undefined;
  #purge: Database.Statement<[number]> | undefined;
  #prune: ((now: number) => number) | undefined;

  constructor(db: Database.Database) {
    this.#db = db;
  }

  get get() {
    this.#get ??= this.#db
      .prepare<[string], [string, number | null]>("SELECT value, expires_at FROM entries WHERE key = ?")
      .raw(true);
    return this.#get;
  }

  get keys() {
    this.#keys ??= this.#db
      .prepare<[number], string>("SELECT key FROM entries WHERE expires_at IS NULL OR expires_at > ?")
      .pluck();
    return this.#keys;
  }

  get remove() {
    this.#remove ??= this.#db.prepare<[string]>("DELETE FROM entries WHERE key = ?");
    return this.#remove;
  }

  get releaseLease() {
    this.#releaseLease ??= this.#db.prepare<[string, string]>(
      "DELETE FROM locks WHERE key = ? AND token = ?",
    );
    return this.#releaseLease;
  }

  /** Expired rows are purged lazily here: writes are rare (one per rotation), reads are not. */
  write(key: string, value: string, expiresAt: number | null, now: number): void {
    if (this.#write === undefined) {
      const db = this.#db;
      const purge = this.#purgeEntries();
      const upsert = db.prepare<[string, string, number | null]>(
        `INSERT INTO entries (key, value, expires_at) VALUES (?, ?, ?)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`,
      );
      this.#write = db.transaction((key: string, value: string, expiresAt: number | null, now: number) => {
        purge.run(now);
        upsert.run(key, value, expiresAt);
      }).immediate;
    }
    this.#write(key, value, expiresAt, now);
  }

  /** IMMEDIATE: the write lock is held from the look to the upsert, so takenOver is exact. */
  takeLease(key: string, token: string, expiresAt: number, now: number): { takenOver: boolean } | undefined {
    if (this.#takeLease === undefined) {
      const db = this.#db;
      const exists = db.prepare<[string]>("SELECT 1 FROM locks WHERE key = ?").pluck();
      // The lock itself: one statement that succeeds only when there is no lease or it has run out.
      const lease = db.prepare<{ key: string; token: string; expiresAt: number; now: number }>(
        `INSERT INTO locks (key, token, expires_at) VALUES (:key, :token, :expiresAt)
         ON CONFLICT (key) DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at
         WHERE locks.expires_at <= :now`,
      );
      this.#takeLease = db.transaction((key: string, token: string, expiresAt: number, now: number) => {
        const existed = exists.get(key) !== undefined;
        const { changes } = lease.run({ key, token, expiresAt, now });
        return changes === 1 ? { takenOver: existed } : undefined;
      }).immediate;
    }
    return this.#takeLease(key, token, expiresAt, now);
  }

  prune(now: number): number {
    if (this.#prune === undefined) {
      const purge = this.#purgeEntries();
      const purgeLeases = this.#db.prepare<[number]>("DELETE FROM locks WHERE expires_at <= ?");
      this.#prune = this.#db.transaction((now: number) => {
        purgeLeases.run(now);
        return purge.run(now).changes;
      }).immediate;
    }
    return this.#prune(now);
  }

  #purgeEntries(): Database.Statement<[number]> {
    this.#purge ??= this.#db.prepare<[number]>("DELETE FROM entries WHERE expires_at <= ?");
    return this.#purge;
  }
}

/**
 * A {@link CredentialCache} in one SQLite file (WAL mode) on better-sqlite3: every process
 * on a host shares it, a hit is one indexed read, and the refresh lock is a lease row taken
 * with one atomic statement. The connection opens on first use. A busy, corrupt or
 * unreadable database never crashes the caller: the call rejects with
 * `CacheUnavailableError` (which `fromCache` reports as a `cache-error` event and works
 * around), a corrupt file is moved aside and replaced, and the next call tries again.
 *
 * @example
 * ```ts
 * import { fromCache } from "@credcache/core";
 * import { sqliteCache } from "@credcache/sqlite";
 * import { fromInstanceMetadata } from "@aws-sdk/credential-providers";
 *
 * const credentials = fromCache({
 *   provider: fromInstanceMetadata(),
 *   cache: sqliteCache({ path: "/var/cache/credcache/credentials.db" }),
 *   key: "imds",
 * });
 * ```
 */
export function sqliteCache(options: SqliteCacheOptions): SqliteCache {
  return new SqliteStore(options);
}
