import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { CacheArgumentError, CacheConfigError, CacheUnavailableError } from "@credcache/core";
import { sqliteCache } from "@credcache/sqlite";
import { describe, expect, it } from "vitest";
import { inspect, manualClock, tempDir } from "./helpers.js";

function open(options: { clock?: { now(): number } } = {}) {
  const path = join(tempDir(), "cache.db");
  return { path, store: sqliteCache({ path, ...options }) };
}

/** A store in a new file on a manual clock, the clock and the file's path. */
function openOnManualClock() {
  const clock = manualClock();
  return { clock, ...open({ clock }) };
}

const count = (path: string, table: string) =>
  inspect(path, (db) => db.prepare(`SELECT count(*) FROM ${table}`).pluck().get());

describe("sqliteCache: the store", () => {
  it("round-trips JSON values, overwrites, removes", async () => {
    const { store } = open();
    expect(await store.get("k")).toBeUndefined();
    await store.set("k", { v: 1, list: [1, "two", null], nested: { ok: true } });
    expect(await store.get("k")).toEqual({ v: 1, list: [1, "two", null], nested: { ok: true } });
    await store.set("k", "second");
    expect(await store.get("k")).toBe("second");
    await store.remove("k");
    await store.remove("k");
    expect(await store.get("k")).toBeUndefined();
    await store.close();
  });

  it("shares entries between connections to the same file", async () => {
    const { path, store } = open();
    const other = sqliteCache({ path });
    await store.set("k", { from: "one" }, 60);
    expect(await other.get("k")).toEqual({ from: "one" });
    await store.close();
    await other.close();
  });

  it("expires entries on the injected clock and purges them on the next write", async () => {
    const { clock, path, store } = openOnManualClock();
    await store.set("short", 1, 1);
    await store.set("forever", 2, 0);
    await store.set("default", 3);
    clock.advance(999);
    expect(await store.get("short")).toBe(1);
    clock.advance(1);
    expect(await store.get("short")).toBeUndefined();
    expect(await store.get("forever")).toBe(2);
    expect(await store.get("default")).toBe(3);
    // Reads never write: the expired row is still there until a write comes by.
    expect(count(path, "entries")).toBe(3);
    await store.set("other", 4, 60);
    expect(count(path, "entries")).toBe(3);
    expect(inspect(path, (db) => db.prepare("SELECT key FROM entries ORDER BY key").pluck().all())).toEqual([
      "default",
      "forever",
      "other",
    ]);
    await store.close();
  });

  it("prune() deletes expired entries and leases and says how many entries went", async () => {
    const { clock, path, store } = openOnManualClock();
    await store.set("a", 1, 1);
    await store.set("b", 1, 2);
    await store.set("c", 1, 60);
    await store.set("d", 1);
    await store.acquireLock("dead-holder", { ttlMs: 500 });
    clock.advance(2_000);
    expect(await store.prune()).toBe(2);
    expect(await store.prune()).toBe(0);
    expect(count(path, "entries")).toBe(2);
    expect(count(path, "locks")).toBe(0);
    await store.close();
  });

  it("keys() lists unexpired entries by the injected clock, never lock leases, and writes nothing", async () => {
    const { clock, path, store } = openOnManualClock();
    expect(await store.keys(), "before first use: opens the new file").toEqual([]);
    const live = ["plain", "ключ/🔑/../x", "with 'quotes' and %_ wildcards"];
    for (const key of live) await store.set(key, { key }, 60);
    await store.set("forever", 1);
    await store.set("short", 2, 1);
    await store.set("removed", 3);
    await store.remove("removed");
    await store.acquireLock("plain", { ttlMs: 60_000 });
    await store.acquireLock("locked-only", { ttlMs: 60_000 });
    clock.advance(999);
    expect((await store.keys()).sort()).toEqual([...live, "forever", "short"].sort());
    clock.advance(1);
    expect((await store.keys()).sort()).toEqual([...live, "forever"].sort());
    expect(count(path, "entries"), "the expired row is left for the next write or prune").toBe(5);
    // Another connection (another process) lists the same keys.
    const other = sqliteCache({ path, clock });
    expect((await other.keys()).sort()).toEqual([...live, "forever"].sort());
    await other.close();
    await store.close();
    await expect(store.keys()).rejects.toThrow(/is closed/);
  });

  it("rejects bad input with typed errors and loses nothing", async () => {
    const { store } = open();
    await store.set("k", "kept");
    await expect(store.set("", 1)).rejects.toBeInstanceOf(CacheArgumentError);
    await expect(store.get("")).rejects.toMatchObject({ code: "ERR_CREDCACHE_ARGUMENT" });
    await expect(store.remove("")).rejects.toBeInstanceOf(CacheArgumentError);
    await expect(store.set("k", 1, -1)).rejects.toBeInstanceOf(CacheArgumentError);
    await expect(store.set("k", 1, Number.NaN)).rejects.toBeInstanceOf(CacheArgumentError);
    await expect(store.set("k", undefined)).rejects.toBeInstanceOf(CacheArgumentError);
    await expect(store.set("k", { n: 1n })).rejects.toBeInstanceOf(CacheArgumentError);
    await expect(store.acquireLock("k", { ttlMs: 0 })).rejects.toBeInstanceOf(CacheArgumentError);
    expect(await store.get("k")).toBe("kept");
    await store.close();
  });

  it("fails at construction on a bad option, saying what to pass", () => {
    expect(() => sqliteCache({ path: "" })).toThrow(CacheConfigError);
    expect(() => sqliteCache({} as never)).toThrow(/"path" must be a database file/);
    expect(() => sqliteCache({ path: ":memory:" })).toThrow(/@credcache\/memory/);
    expect(() => sqliteCache({ path: "/tmp/x.db", busyTimeoutMs: -1 })).toThrow(/busyTimeoutMs/);
    expect(() => sqliteCache({ path: "/tmp/x.db", clock: {} as never })).toThrow(/clock/);
  });

  it("opens nothing until first used, resolves a relative path, and rejects after close()", async () => {
    const dir = tempDir();
    const store = sqliteCache({ path: join(dir, "lazy", "cache.db") });
    expect(sqliteCache({ path: "relative.db" }).path).toBe(resolve("relative.db"));
    expect(existsSync(join(dir, "lazy"))).toBe(false);
    await store.set("k", 1);
    expect(existsSync(join(dir, "lazy", "cache.db"))).toBe(true);
    await store.close();
    await store.close();
    await expect(store.get("k")).rejects.toBeInstanceOf(CacheUnavailableError);
    await expect(store.get("k")).rejects.toThrow(/is closed/);
  });

  it("keeps a stored value that is not JSON out of the error message", async () => {
    const { path, store } = open();
    await store.set("k", 1);
    const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    inspect(path, (db) => db.prepare("UPDATE entries SET value = ? WHERE key = 'k'").run(`{"s":"${secret}"`));
    const error = await store.get("k").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CacheUnavailableError);
    expect(String((error as Error).message)).not.toContain(secret);
    expect(String((error as Error).message)).not.toContain("wJal");
    await store.set("k", 2);
    expect(await store.get("k")).toBe(2);
    await store.close();
  });
});

describe("sqliteCache: the lease lock", () => {
  it("gives the lock to exactly one of many callers across connections", async () => {
    const { path, store } = open();
    const others = [sqliteCache({ path }), sqliteCache({ path })];
    const attempts = await Promise.all(
      [store, ...others, store, ...others].map((s) => s.acquireLock("k", { ttlMs: 10_000 })),
    );
    expect(attempts.filter(Boolean)).toHaveLength(1);
    expect(attempts.find(Boolean)?.takenOver).toBe(false);
    for (const s of [store, ...others]) await s.close();
  });

  it("is undefined while held, free after release, per key", async () => {
    const { store } = open();
    const held = await store.acquireLock("k", { ttlMs: 10_000 });
    expect(held).toBeDefined();
    expect(await store.acquireLock("k", { ttlMs: 10_000 })).toBeUndefined();
    const otherKey = await store.acquireLock("other", { ttlMs: 10_000 });
    expect(otherKey).toBeDefined();
    await held!.release();
    const next = await store.acquireLock("k", { ttlMs: 10_000 });
    expect(next).toBeDefined();
    expect(next!.takenOver).toBe(false);
    await next!.release();
    await otherKey!.release();
    await store.close();
  });

  it("takes over a lease that ran out on the clock; the old holder cannot free the new one", async () => {
    const { clock, path, store } = openOnManualClock();
    const first = await store.acquireLock("k", { ttlMs: 1_000 });
    clock.advance(999);
    expect(await store.acquireLock("k", { ttlMs: 1_000 })).toBeUndefined();
    clock.advance(1);
    const second = await store.acquireLock("k", { ttlMs: 1_000 });
    expect(second?.takenOver).toBe(true);
    await first!.release();
    await first!.release();
    expect(await store.acquireLock("k", { ttlMs: 1_000 })).toBeUndefined();
    await second!.release();
    await second!.release();
    expect(count(path, "locks")).toBe(0);
    const third = await store.acquireLock("k", { ttlMs: 1_000 });
    expect(third?.takenOver).toBe(false);
    await store.close();
    // After close the lease is left to run out; releasing is harmless.
    await third!.release();
  });
});

describe("sqliteCache: loading better-sqlite3", () => {
  it("opens with better-sqlite3's addon loaded from beside its module, never through `bindings` (ESM and CJS builds)", async () => {
    const { path, store } = open();
    await store.set("k", "v");
    await store.close();
    for (const [build, load] of [
      ["index.js", "await import"],
      ["index.cjs", "require"],
    ] as const) {
      const dist = fileURLToPath(new URL(`../dist/${build}`, import.meta.url));
      expect(existsSync(dist), `build @credcache/sqlite first (npx tsup): ${dist}`).toBe(true);
      // A fresh process, as the CLI is: the first `get` is the one that loads the addon.
      const script = `
        const { createRequire } = require("node:module");
        (async () => {
          const store = (${load}(${JSON.stringify(dist)})).sqliteCache({ path: ${JSON.stringify(path)} });
          const value = await store.get("k");
          const loaded = Object.keys(createRequire("/").cache);
          console.log(JSON.stringify({
            value,
            addon: loaded.filter((f) => f.endsWith("better_sqlite3.node")).length,
            bindings: loaded.filter((f) => /[\\/]node_modules[\\/]bindings[\\/]/.test(f)),
          }));
        })();`;
      const out = JSON.parse(execFileSync(process.execPath, ["-e", script], { encoding: "utf8" }));
      expect(out, build).toEqual({ value: "v", addon: 1, bindings: [] });
    }
  });
});
