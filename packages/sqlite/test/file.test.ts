import { spawn } from "node:child_process";
import { once } from "node:events";
import {
  chmodSync,
  chownSync,
  existsSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type CacheEvent, CacheUnavailableError, type CredentialCache, fromCache } from "@credcache/core";
import { SCHEMA_VERSION, sqliteCache } from "@credcache/sqlite";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { inspect, tempDir } from "./helpers.js";

const HOUR = 3_600_000;
const mode = (path: string) => statSync(path).mode & 0o777;

/** fromCache over `cache` with a source that hands out numbered credentials. */
function provider(cache: CredentialCache) {
  const events: CacheEvent[] = [];
  let calls = 0;
  const credentials = fromCache({
    cache,
    key: "creds",
    proactiveRefresh: false,
    onEvent: (event) => events.push(event),
    provider: async () => {
      calls += 1;
      return {
        accessKeyId: `AKIAEXAMPLE${calls}`,
        secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        expiration: new Date(Date.now() + HOUR),
      };
    },
  });
  return { credentials, events, calls: () => calls };
}

const cacheErrors = (events: CacheEvent[]) =>
  events.filter((e): e is Extract<CacheEvent, { type: "cache-error" }> => e.type === "cache-error");

describe("sqliteCache: the database file", () => {
  it("is in WAL mode with the schema version recorded", async () => {
    const path = join(tempDir(), "cache.db");
    const store = sqliteCache({ path });
    await store.set("k", 1);
    expect(existsSync(`${path}-wal`)).toBe(true);
    inspect(path, (db) => {
      expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
      expect(db.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
      expect(db.prepare("SELECT name FROM pragma_table_info('entries')").pluck().all()).toEqual([
        "key",
        "value",
        "expires_at",
      ]);
      expect(db.prepare("SELECT name FROM pragma_table_info('locks')").pluck().all()).toEqual([
        "key",
        "token",
        "expires_at",
      ]);
    });
    await store.close();
  });

  it("migrates a version-0 database with the old entries table, keeping its rows", async () => {
    const path = join(tempDir(), "cache.db");
    const old = new Database(path);
    old.exec("CREATE TABLE entries (key TEXT, value TEXT); CREATE TABLE locks (key TEXT, holder TEXT)");
    old.prepare("INSERT INTO entries VALUES (?, ?)").run("kept", JSON.stringify({ old: true }));
    old.prepare("INSERT INTO entries VALUES (?, ?)").run("null-value", null);
    old.close();

    const store = sqliteCache({ path });
    expect(await store.get("kept")).toEqual({ old: true });
    expect(await store.get("null-value")).toBeUndefined();
    await store.set("kept", { new: true }, 60);
    expect(await store.get("kept")).toEqual({ new: true });
    expect(await store.acquireLock("kept", { ttlMs: 1000 })).toBeDefined();
    inspect(path, (db) => {
      expect(db.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
      expect(db.prepare("SELECT count(*) FROM entries").pluck().get()).toBe(1);
      expect(db.prepare("SELECT name FROM pragma_table_info('locks')").pluck().all()).toContain("token");
    });
    await store.close();
  });

  it("leaves a database that is not its own alone, and one from a newer version", async () => {
    const dir = tempDir();
    const foreign = join(dir, "app.db");
    const db = new Database(foreign);
    db.exec("CREATE TABLE users (id INTEGER PRIMARY KEY)");
    db.close();
    const newer = join(dir, "newer.db");
    const db2 = new Database(newer);
    db2.pragma("user_version = 99");
    db2.close();

    const a = sqliteCache({ path: foreign });
    await expect(a.get("k")).rejects.toThrow(/not a credcache database \(it has the table\(s\) users\)/);
    const b = sqliteCache({ path: newer });
    await expect(b.set("k", 1)).rejects.toThrow(/schema version 99, written by a newer/);
    await expect(b.get("k")).rejects.toBeInstanceOf(CacheUnavailableError);
    inspect(foreign, (d) => {
      expect(d.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'").pluck().all()).toEqual([
        "users",
      ]);
    });
    expect(readdirSync(dir).some((name) => name.includes("corrupt"))).toBe(false);
  });

  it("creates the directory 0700 and the database, -wal and -shm 0600 whatever the umask", async () => {
    const dir = join(tempDir(), "nested", "cache");
    const path = join(dir, "cache.db");
    const previous = process.umask(0);
    try {
      const store = sqliteCache({ path });
      await store.set("k", { secret: "material" }, 60);
      expect(mode(dir)).toBe(0o700);
      expect(mode(path)).toBe(0o600);
      expect(mode(`${path}-wal`)).toBe(0o600);
      expect(mode(`${path}-shm`)).toBe(0o600);
      await store.close();

      // A file someone left readable is tightened on open.
      chmodSync(path, 0o644);
      const again = sqliteCache({ path });
      expect(await again.get("k")).toEqual({ secret: "material" });
      expect(mode(path)).toBe(0o600);
      expect(mode(`${path}-wal`)).toBe(0o600);
      expect(mode(`${path}-shm`)).toBe(0o600);
      await again.close();
    } finally {
      process.umask(previous);
    }
  });

  it("refuses a symlink at the path and a file owned by another user", async () => {
    const dir = tempDir();
    const target = join(dir, "elsewhere.db");
    writeFileSync(target, "");
    chmodSync(target, 0o644);
    symlinkSync(target, join(dir, "link.db"));
    const linked = sqliteCache({ path: join(dir, "link.db") });
    await expect(linked.set("k", 1)).rejects.toThrow(/it is a symbolic link/);
    expect(mode(target)).toBe(0o644);
    expect(statSync(target).size).toBe(0);

    if (process.getuid?.() === 0) {
      const foreign = join(dir, "foreign.db");
      writeFileSync(foreign, "");
      chownSync(foreign, 65534, 65534);
      const store = sqliteCache({ path: foreign });
      await expect(store.get("k")).rejects.toThrow(/owned by uid 65534, not by this process/);
      expect(statSync(foreign).size).toBe(0);
    }
  });

  it("reports a file that is not a database, moves it aside and starts afresh", async () => {
    const dir = tempDir();
    const path = join(dir, "cache.db");
    writeFileSync(path, "this is not a database ".repeat(100));
    const store = sqliteCache({ path });

    const error = await store.get("k").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CacheUnavailableError);
    expect((error as Error).message).toContain(path);
    expect((error as Error).message).toContain("file is not a database");
    const aside = readdirSync(dir).filter((name) => name.startsWith("cache.db.corrupt-"));
    expect(aside).toHaveLength(1);
    expect(readFileSync(join(dir, aside[0]!), "utf8")).toContain("this is not a database");

    expect(await store.get("k")).toBeUndefined();
    await store.set("k", 1);
    expect(await store.get("k")).toBe(1);
    await store.close();
  });

  it("keys() on a file that is not a database: CacheUnavailableError, moved aside, then a fresh listing", async () => {
    const dir = tempDir();
    const path = join(dir, "cache.db");
    writeFileSync(path, "this is not a database ".repeat(100));
    const store = sqliteCache({ path });
    const error = await store.keys().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CacheUnavailableError);
    expect((error as Error).message).toMatch(/keys failed, the database is unusable/);
    expect(readdirSync(dir).filter((name) => name.startsWith("cache.db.corrupt-"))).toHaveLength(1);
    expect(await store.keys()).toEqual([]);
    await store.close();
  });

  it("fromCache still returns credentials over a garbage file, with a cache-error event", async () => {
    const dir = tempDir();
    const path = join(dir, "cache.db");
    writeFileSync(path, Buffer.alloc(8192, 0xab));
    const store = sqliteCache({ path });
    const { credentials, events, calls } = provider(store);

    expect((await credentials()).accessKeyId).toBe("AKIAEXAMPLE1");
    const errors = cacheErrors(events);
    expect(errors[0]).toMatchObject({ operation: "get", error: { code: "ERR_CREDCACHE_UNAVAILABLE" } });
    expect(errors[0]!.error.message).toContain(path);
    // The fresh database took the credentials: the next process reads them instead of the source.
    const next = provider(sqliteCache({ path }));
    expect((await next.credentials()).accessKeyId).toBe("AKIAEXAMPLE1");
    expect(next.calls()).toBe(0);
    expect(calls()).toBe(1);
    await store.close();
  });

  it("reports a truncated database, moves it aside and starts afresh", async () => {
    const dir = tempDir();
    const path = join(dir, "cache.db");
    const store = sqliteCache({ path });
    for (let i = 0; i < 50; i++) await store.set(`key-${i}`, { filler: "x".repeat(2000) }, 60);
    await store.close();
    expect(existsSync(`${path}-wal`)).toBe(false);
    truncateSync(path, Math.floor(statSync(path).size / 3));

    const reopened = sqliteCache({ path });
    const { credentials, events } = provider(reopened);
    expect((await credentials()).accessKeyId).toBe("AKIAEXAMPLE1");
    expect(cacheErrors(events)[0]!.error.message).toMatch(/malformed|not a database/);
    expect(readdirSync(dir).filter((name) => name.startsWith("cache.db.corrupt-"))).toHaveLength(1);
    expect(await reopened.get("creds")).toMatchObject({ accessKeyId: "AKIAEXAMPLE1" });
    await reopened.close();
  });

  it("skips writes while another connection holds the write lock; reads go on; recovers after", async () => {
    const path = join(tempDir(), "cache.db");
    const store = sqliteCache({ path, busyTimeoutMs: 20 });
    await store.set("k", "before");
    const holder = new Database(path);
    holder.exec("BEGIN EXCLUSIVE");
    holder.prepare("UPDATE entries SET value = ? WHERE key = 'k'").run(JSON.stringify("uncommitted"));

    expect(await store.get("k")).toBe("before");
    expect(await store.keys(), "a listing is a read: it does not wait for the writer").toEqual(["k"]);
    const error = await store.set("k", "during").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CacheUnavailableError);
    expect((error as Error).message).toContain(path);
    expect((error as Error).message).toContain("SQLITE_BUSY");
    await expect(store.acquireLock("k", { ttlMs: 1000 })).rejects.toBeInstanceOf(CacheUnavailableError);

    const { credentials, events } = provider(store);
    expect((await credentials()).accessKeyId).toBe("AKIAEXAMPLE1");
    // The lock and every write (the record, and the shared refresh state) fail; no read does.
    const operations = cacheErrors(events).map((e) => e.operation);
    expect(operations).toEqual(expect.arrayContaining(["acquireLock", "set"]));
    expect(operations.filter((op) => op === "get")).toEqual([]);

    holder.exec("ROLLBACK");
    holder.close();
    await store.set("k", "after");
    expect(await store.get("k")).toBe("after");
    await store.close();
  });

  it("bypasses every call while another connection locks the file exclusively; recovers after", async () => {
    const path = join(tempDir(), "cache.db");
    const seed = sqliteCache({ path });
    await seed.set("k", "before");
    await seed.close();
    const holder = new Database(path);
    holder.pragma("locking_mode = EXCLUSIVE");
    holder.prepare("UPDATE entries SET value = value").run();

    const store = sqliteCache({ path, busyTimeoutMs: 20 });
    await expect(store.get("k")).rejects.toThrow(/locked by another connection/);
    await expect(store.get("k")).rejects.toBeInstanceOf(CacheUnavailableError);
    await expect(store.keys()).rejects.toThrow(/keys skipped, the database is locked/);
    const { credentials, events } = provider(store);
    expect((await credentials()).accessKeyId).toBe("AKIAEXAMPLE1");
    expect(cacheErrors(events).map((e) => e.operation)).toContain("get");

    holder.close();
    expect(await store.get("k")).toBe("before");
    expect(readdirSync(join(path, "..")).some((name) => name.includes("corrupt"))).toBe(false);
    await store.close();
  });

  it("a new file another process is still setting up: opening waits for it instead of failing the first call", async () => {
    // With 64 processes opening a new file at once, switching it to WAL sometimes got
    // SQLITE_BUSY past the busy timeout; that process went without its store.
    const path = join(tempDir(), "cache.db");
    const child = spawn(
      process.execPath,
      [fileURLToPath(new URL("./fixtures/hold-new-file.mjs", import.meta.url)), path, "400"],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    const [ready] = (await once(child.stdout!, "data")) as [Buffer];
    expect(ready.toString()).toBe("ready\n");
    const store = sqliteCache({ path, busyTimeoutMs: 50 });
    expect(await store.get("k")).toBeUndefined();
    await store.set("k", "v");
    expect(await store.get("k")).toBe("v");
    await once(child, "exit");
    const db = new Database(path, { readonly: true });
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    db.close();
    await store.close();
  });

  it("keeps the old value when a writer is killed -9 mid-transaction", async () => {
    const path = join(tempDir(), "cache.db");
    const store = sqliteCache({ path, busyTimeoutMs: 20 });
    await store.set("k", "old");
    const child = spawn(
      process.execPath,
      [fileURLToPath(new URL("./fixtures/hold-write.mjs", import.meta.url)), path, "k", "new"],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    const [ready] = (await once(child.stdout!, "data")) as [Buffer];
    expect(ready.toString()).toBe("ready\n");
    // The child really holds the write lock.
    await expect(store.set("k", "blocked")).rejects.toThrow(/SQLITE_BUSY/);
    child.kill("SIGKILL");
    await once(child, "exit");

    expect(await store.get("k")).toBe("old");
    const fresh = sqliteCache({ path });
    expect(await fresh.get("k")).toBe("old");
    await fresh.set("k", "next");
    expect(await store.get("k")).toBe("next");
    await fresh.close();
    await store.close();
  });

  it("follows the file when it is replaced or removed under an open connection", async () => {
    const dir = tempDir();
    const path = join(dir, "cache.db");
    const store = sqliteCache({ path });
    await store.set("k", 1);
    for (const suffix of ["", "-wal", "-shm"]) rmSync(path + suffix, { force: true });
    await store.set("k", 2);
    const other = sqliteCache({ path });
    expect(await other.get("k")).toBe(2);
    expect(await other.acquireLock("k", { ttlMs: 1000 })).toBeDefined();
    expect(await store.acquireLock("k", { ttlMs: 1000 })).toBeUndefined();
    await other.close();
    await store.close();
  });
});
