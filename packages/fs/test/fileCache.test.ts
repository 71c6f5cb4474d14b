import fs, {
  existsSync,
  lstatSync,
  readdirSync,
  readFileSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import { join } from "node:path";
import { CacheArgumentError, CacheConfigError, CacheRecordError } from "@credcache/core";
import { afterEach, describe, expect, it, vi } from "vitest";
import { defaultCacheDir, entryFileName, fileCache } from "../src/index.js";
import {
  cacheErrors,
  entryFile,
  HOUR_MS as HOUR,
  leaseFile,
  manualClock,
  mode,
  resolveThrough,
  tempDir,
  withUmask,
} from "./helpers.js";

afterEach(() => {
  vi.restoreAllMocks();
});

describe("fileCache: entries", () => {
  it("stores one envelope per key, named by the SHA-256 of the key", async () => {
    const dir = join(tempDir(), "cache");
    const clock = manualClock();
    const store = fileCache({ dir, clock });
    await store.set("../../etc/passwd", { a: 1 }, 60);
    await store.set("plain", [1, "two"]);
    expect(readdirSync(dir).sort()).toEqual(
      [entryFileName("../../etc/passwd"), entryFileName("plain")].sort(),
    );
    expect(JSON.parse(readFileSync(entryFile(dir, "../../etc/passwd"), "utf8"))).toEqual({
      key: "../../etc/passwd",
      expiresAt: clock.now() + 60_000,
      value: { a: 1 },
    });
    expect(JSON.parse(readFileSync(entryFile(dir, "plain"), "utf8"))).toEqual({
      key: "plain",
      value: [1, "two"],
    });
    expect(await store.get("../../etc/passwd")).toEqual({ a: 1 });
    expect(await store.get("plain")).toEqual([1, "two"]);
    await store.remove("plain");
    await store.remove("plain");
    expect(await store.get("plain")).toBeUndefined();
  });

  it("deletes an expired entry when it is read; TTL 0 never expires", async () => {
    const dir = tempDir();
    const clock = manualClock();
    const store = fileCache({ dir, clock });
    await store.set("short", "s", 60);
    await store.set("forever", "f", 0);
    clock.advance(59_999);
    expect(await store.get("short")).toBe("s");
    clock.advance(1);
    expect(existsSync(entryFile(dir, "short"))).toBe(true);
    expect(await store.get("short")).toBeUndefined();
    expect(existsSync(entryFile(dir, "short")), "the expired file is gone").toBe(false);
    clock.advance(10 * 365 * 24 * HOUR);
    expect(await store.get("forever")).toBe("f");
  });

  it.each([
    ["not JSON", "{not json", "unparseable"],
    ["an empty file", "", "unparseable"],
    ["JSON that is not an envelope", JSON.stringify({ v: 1, accessKeyId: "AKIA" }), "not-an-envelope"],
    ["an envelope without value", JSON.stringify({ key: "k" }), "not-an-envelope"],
    ["an envelope of another key", JSON.stringify({ key: "other", value: 1 }), "wrong-key"],
    [
      "an envelope with a string expiresAt",
      JSON.stringify({ key: "k", expiresAt: "soon", value: 1 }),
      "not-an-envelope",
    ],
    ["an array", "[1,2]", "not-an-envelope"],
    ["a number", "-1", "not-an-envelope"],
    ["null", "null", "not-an-envelope"],
  ])("removes %s and rejects with CacheRecordError, never quoting it", async (_label, contents, reason) => {
    const dir = tempDir();
    const store = fileCache({ dir });
    const file = entryFile(dir, "k");
    writeFileSync(file, contents, { mode: 0o600 });
    const error = await store.get("k").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CacheRecordError);
    expect(error).toMatchObject({ code: "ERR_CREDCACHE_RECORD", reason });
    expect((error as Error).message).toContain(file);
    if (contents.length > 2) expect((error as Error).message).not.toContain(contents);
    expect(existsSync(file)).toBe(false);
    expect(await store.get("k"), "the next read is a plain miss").toBeUndefined();
  });

  it("removes a file over maxFileBytes with CacheRecordError (oversized), and refuses to write one", async () => {
    const dir = tempDir();
    const store = fileCache({ dir, maxFileBytes: 1024 });
    writeFileSync(entryFile(dir, "k"), JSON.stringify({ key: "k", value: "x".repeat(2000) }), {
      mode: 0o600,
    });
    await expect(store.get("k")).rejects.toMatchObject({
      name: "CacheRecordError",
      reason: "oversized",
      message: expect.stringMatching(/over the 1024 byte cap/),
    });
    expect(existsSync(entryFile(dir, "k"))).toBe(false);

    await store.set("k", "small");
    const error = await store.set("k", "x".repeat(2000)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CacheArgumentError);
    expect((error as Error).message).toContain("maxFileBytes is 1024");
    expect(await store.get("k"), "the old value is kept").toBe("small");
  });

  it("a broken entry is reported by fromCache as record-rejected, and the source refills it", async () => {
    const dir = tempDir();
    const store = fileCache({ dir });
    const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    writeFileSync(entryFile(dir, "creds"), `{"secretAccessKey":"${secret}"`, { mode: 0o600 });
    const { identity, events, source } = await resolveThrough(store);
    expect(source.state.calls).toBe(1);
    expect(identity.accessKeyId).toBe(source.state.last?.accessKeyId);
    expect(events).toContainEqual(
      expect.objectContaining({ type: "record-rejected", reason: "unparseable" }),
    );
    expect(cacheErrors(events), "a broken record is not a store failure").toEqual([]);
    expect(JSON.stringify(events)).not.toContain(secret);
    const again = await resolveThrough(fileCache({ dir }));
    expect(again.source.state.calls, "the source's answer was stored").toBe(0);
  });

  it("a broken entry replaced by a good one while it was read: the good one is returned and kept", async () => {
    const dir = tempDir();
    const store = fileCache({ dir });
    const file = entryFile(dir, "k");
    writeFileSync(file, "{not json", { mode: 0o600 });
    // Another process renames a fresh entry into place right after our read closes the file.
    const closeSync = fs.closeSync;
    let swapped = false;
    vi.spyOn(fs, "closeSync").mockImplementation((fd) => {
      closeSync(fd);
      if (swapped) return;
      swapped = true;
      writeFileSync(`${file}.1`, JSON.stringify({ key: "k", value: "fresh" }), { mode: 0o600 });
      fs.renameSync(`${file}.1`, file);
    });
    syncBuiltinESMExports();
    try {
      expect(await store.get("k")).toBe("fresh");
    } finally {
      vi.restoreAllMocks();
      syncBuiltinESMExports();
    }
    expect(swapped).toBe(true);
    expect(await store.get("k"), "the fresh entry survived").toBe("fresh");
  });

  it("an entry that expired is a plain miss, not a CacheRecordError", async () => {
    const dir = tempDir();
    const clock = manualClock();
    const store = fileCache({ dir, clock });
    await store.set("k", 1, 1);
    clock.advance(1000);
    expect(await store.get("k")).toBeUndefined();
  });

  it("keys() skips broken entries silently and leaves them for get and prune", async () => {
    const dir = tempDir();
    const store = fileCache({ dir, maxFileBytes: 1024 });
    await store.set("good", 1);
    writeFileSync(entryFile(dir, "bad"), "{not json", { mode: 0o600 });
    writeFileSync(entryFile(dir, "big"), JSON.stringify({ key: "big", value: "x".repeat(2000) }), {
      mode: 0o600,
    });
    expect(await store.keys()).toEqual(["good"]);
    expect(existsSync(entryFile(dir, "bad"))).toBe(true);
    expect(await store.prune()).toBe(2);
  });

  it("rejects bad input with CacheArgumentError and loses nothing", async () => {
    const store = fileCache({ dir: tempDir() });
    await store.set("k", 1);
    const bad: Array<() => Promise<unknown>> = [
      () => store.get(""),
      () => store.set("", 1),
      () => store.set("k", 2, -1),
      () => store.set("k", 2, Number.NaN),
      () => store.set("k", undefined),
      () => store.set("k", { big: 1n }),
      () => store.set("k", () => 1),
      () => store.remove(""),
      () => store.acquireLock("k", { ttlMs: 0 }),
      () => store.get("x".repeat(5000)),
    ];
    for (const call of bad) {
      await expect(call()).rejects.toMatchObject({ code: "ERR_CREDCACHE_ARGUMENT" });
    }
    expect(await store.get("k")).toBe(1);
  });

  it("rejects bad options with CacheConfigError", () => {
    expect(() => fileCache({ maxFileBytes: 0 })).toThrow(CacheConfigError);
    expect(() => fileCache({ clock: {} as never })).toThrow(CacheConfigError);
  });

  it("defaults to $XDG_CACHE_HOME/credcache, else ~/.cache/credcache", () => {
    vi.stubEnv("XDG_CACHE_HOME", "/var/cache/me");
    expect(defaultCacheDir()).toBe("/var/cache/me/credcache");
    expect(fileCache().dir).toBe("/var/cache/me/credcache");
    vi.stubEnv("XDG_CACHE_HOME", "relative/path");
    expect(defaultCacheDir()).toMatch(/\/\.cache\/credcache$/);
    vi.unstubAllEnvs();
  });
});

describe("fileCache: housekeeping", () => {
  it("prune() removes expired and unreadable entries and stale temp files, and counts them", async () => {
    const dir = tempDir();
    const clock = manualClock();
    const store = fileCache({ dir, clock });
    await store.set("expired-1", 1, 10);
    await store.set("expired-2", 2, 10);
    await store.set("fresh", 3, 3600);
    await store.set("forever", 4);
    writeFileSync(entryFile(dir, "garbage"), "garbage", { mode: 0o600 });
    const staleTemp = `${entryFile(dir, "fresh")}.123456`;
    const freshTemp = `${entryFile(dir, "fresh")}.654321`;
    writeFileSync(staleTemp, "half a wri", { mode: 0o600 });
    writeFileSync(freshTemp, "in progres", { mode: 0o600 });
    const twoMinutesAgo = new Date(Date.now() - 120_000);
    utimesSync(staleTemp, twoMinutesAgo, twoMinutesAgo);
    writeFileSync(join(dir, "unrelated.txt"), "not ours to judge");
    clock.advance(11_000);

    expect(await store.prune()).toBe(4);
    expect(readdirSync(dir).sort()).toEqual(
      [entryFileName("fresh"), entryFileName("forever"), "unrelated.txt", freshTemp.split("/").pop()].sort(),
    );
    expect(await store.get("fresh")).toBe(3);
    expect(await store.prune()).toBe(0);
  });

  it("a write cleans up temp files that crashed writers left more than a minute ago", async () => {
    const dir = tempDir();
    const store = fileCache({ dir });
    await store.get("k"); // creates the directory
    const leftover = `${entryFile(dir, "other")}.99`;
    writeFileSync(leftover, "partial", { mode: 0o600 });
    const old = new Date(Date.now() - 120_000);
    utimesSync(leftover, old, old);
    await store.set("k", 1);
    expect(existsSync(leftover)).toBe(false);
  });
});

describe("fileCache: keys()", () => {
  it("lists the live entries by the keys given to set, reading nothing but entry files", async () => {
    const dir = join(tempDir(), "cache");
    const clock = manualClock();
    const store = fileCache({ dir, clock, maxFileBytes: 1024 });
    expect(await store.keys(), "a new directory").toEqual([]);
    const live = ["plain", "../../etc/passwd", "ключ/🔑 with spaces", "a\\b"];
    for (const key of live) await store.set(key, { key }, 3600);
    await store.set("forever", 1);
    await store.set("expired", 2, 10);
    await store.set("removed", 3);
    await store.remove("removed");
    // Lock leftovers, a write in progress, garbage and strangers beside the entries.
    const lock = await store.acquireLock("plain", { ttlMs: 60_000 });
    await store.acquireLock("locked-only", { ttlMs: 60_000 });
    fs.mkdirSync(`${leaseFile(dir, "other")}.lock`, { mode: 0o700 });
    writeFileSync(`${entryFile(dir, "in-progress")}.123`, JSON.stringify({ key: "in-progress", value: 1 }), {
      mode: 0o600,
    });
    writeFileSync(entryFile(dir, "garbage"), "{not json", { mode: 0o600 });
    writeFileSync(entryFile(dir, "huge"), JSON.stringify({ key: "huge", value: "x".repeat(2000) }), {
      mode: 0o600,
    });
    writeFileSync(join(dir, "unrelated.json"), JSON.stringify({ key: "unrelated", value: 1 }), {
      mode: 0o600,
    });
    // A valid envelope under another key's name: get("misplaced") would never read it.
    writeFileSync(entryFile(dir, "somewhere-else"), JSON.stringify({ key: "misplaced", value: 1 }), {
      mode: 0o600,
    });
    clock.advance(11_000);

    const before = readdirSync(dir).sort();
    expect((await store.keys()).sort()).toEqual([...live, "forever"].sort());
    expect(readdirSync(dir).sort(), "listing deletes nothing").toEqual(before);
    for (const key of live) expect(await store.get(key)).toEqual({ key });
    await lock!.release();

    clock.advance(3600_000);
    expect(await store.keys()).toEqual(["forever"]);
  });

  it("the same listing from another store on the directory: keys come from the files, not from memory", async () => {
    const dir = tempDir();
    await fileCache({ dir }).set("written-by-another-process", 1);
    expect(await fileCache({ dir }).keys()).toEqual(["written-by-another-process"]);
  });
});

describe("fileCache: permissions whatever the umask", () => {
  it("creates the directory 0700, entries and their temp files 0600, lock files 0600 and 0700 (umask 0)", async () => {
    const base = tempDir();
    const dir = join(base, "a", "b", "cache");
    const tempModes: string[] = [];
    const mutexModes: string[] = [];
    const rename = fs.promises.rename;
    // A write renames its temp file into place last: look at it just before.
    vi.spyOn(fs.promises, "rename").mockImplementation(async (from, to) => {
      tempModes.push(mode(lstatSync(from)));
      return rename(from, to);
    });
    const rmdirSync = fs.rmdirSync;
    // The lock removes its mutex directory with rmdirSync as it leaves the critical step.
    vi.spyOn(fs, "rmdirSync").mockImplementation(((path: string) => {
      mutexModes.push(mode(lstatSync(path)));
      return rmdirSync(path);
    }) as typeof fs.rmdirSync);

    await withUmask(0, async () => {
      const store = fileCache({ dir });
      await store.set("k", { v: 1 }, 60);
      await store.set("k", { v: 2 }, 60);
      const lock = await store.acquireLock("k", { ttlMs: 5000 });
      expect(lock).toBeDefined();
      expect(mode(statSync(leaseFile(dir, "k")))).toBe("600");
      await lock!.release();
    });
    expect(mode(statSync(dir))).toBe("700");
    expect(mode(statSync(join(base, "a")))).toBe("700");
    expect(mode(statSync(entryFile(dir, "k")))).toBe("600");
    expect(tempModes).toEqual(["600", "600"]);
    expect(mutexModes.length).toBeGreaterThan(0);
    expect(new Set(mutexModes)).toEqual(new Set(["700"]));
  });

  it("writes exactly 0600 under a umask that would strip the owner's bits (0o277)", async () => {
    const dir = join(tempDir(), "cache");
    await withUmask(0o277, async () => {
      const store = fileCache({ dir });
      await store.set("k", 1);
      expect(await store.get("k")).toBe(1);
    });
    expect(mode(statSync(dir))).toBe("700");
    expect(mode(statSync(entryFile(dir, "k")))).toBe("600");
  });

  it("keeps an existing safe directory's mode (0755 is accepted, never changed)", async () => {
    const dir = tempDir();
    fs.chmodSync(dir, 0o755);
    const store = fileCache({ dir });
    await store.set("k", 1);
    expect(mode(statSync(dir))).toBe("755");
    expect(mode(statSync(entryFile(dir, "k")))).toBe("600");
  });
});

describe("fileCache: locks", () => {
  it("close() releases the locks the store still holds", async () => {
    const dir = tempDir();
    const store = fileCache({ dir });
    expect(await store.acquireLock("k", { ttlMs: 60_000 })).toBeDefined();
    expect(await store.acquireLock("k", { ttlMs: 60_000 })).toBeUndefined();
    await store.close();
    expect(existsSync(leaseFile(dir, "k"))).toBe(false);
    const again = await fileCache({ dir }).acquireLock("k", { ttlMs: 60_000 });
    expect(again?.takenOver).toBe(false);
  });

  it("a lease by the injected clock: takeover is reported; garbage in the lease file is held for one ttl by its mtime, then taken over", async () => {
    const dir = tempDir();
    const clock = manualClock();
    const store = fileCache({ dir, clock });
    const first = await store.acquireLock("k", { ttlMs: 300 });
    expect(first?.takenOver).toBe(false);
    clock.advance(299);
    expect(await store.acquireLock("k", { ttlMs: 300 })).toBeUndefined();
    clock.advance(1);
    const second = await store.acquireLock("k", { ttlMs: 300 });
    expect(second?.takenOver).toBe(true);
    await first!.release();
    expect(
      await store.acquireLock("k", { ttlMs: 300 }),
      "the old holder's release freed nothing",
    ).toBeUndefined();
    await second!.release();

    // A writer that died between creating the lease and writing it leaves garbage: not proof
    // that the lock is free until the file is older than a lease.
    writeFileSync(leaseFile(dir, "k"), "garbage", { mode: 0o600 });
    expect(await store.acquireLock("k", { ttlMs: 60_000 }), "fresh garbage counts as held").toBeUndefined();
    const old = new Date(Date.now() - 120_000);
    utimesSync(leaseFile(dir, "k"), old, old);
    const third = await store.acquireLock("k", { ttlMs: 60_000 });
    expect(third?.takenOver).toBe(true);
    await third!.release();
  });

  it("a mutex left by a process killed mid-step is taken over after 2 s; a live one means busy", async () => {
    const dir = tempDir();
    const store = fileCache({ dir });
    const mutex = `${leaseFile(dir, "k")}.lock`;
    fs.mkdirSync(mutex, { mode: 0o700 });
    expect(await store.acquireLock("k", { ttlMs: 60_000 }), "a live mutex: busy").toBeUndefined();
    expect(existsSync(mutex), "a live mutex is left alone").toBe(true);
    const old = new Date(Date.now() - 5_000);
    utimesSync(mutex, old, old);
    const lock = await store.acquireLock("k", { ttlMs: 60_000 });
    expect(lock?.takenOver).toBe(false);
    expect(
      readdirSync(dir).filter((name) => name.includes(".lock")),
      "no mutex left behind",
    ).toEqual([]);
    await lock!.release();
    expect(existsSync(leaseFile(dir, "k"))).toBe(false);
  });

  it("taking and releasing a free lock never waits on the event loop, so a busy host cannot stretch it", async () => {
    // With 64 processes starting on 2 cores, each turn of a process's event loop can take
    // a second: a lock that needs several turns (callbacks, retry timers) then outlasts
    // cacheTimeoutMs, the callers count it as busy and all wait for a holder that is not.
    const store = fileCache({ dir: tempDir() });
    await store.get("warm-up"); // creates the directory
    let turned = false;
    setImmediate(() => {
      turned = true;
    });
    const lock = await store.acquireLock("k", { ttlMs: 60_000 });
    expect(lock, "acquired").toBeDefined();
    await lock!.release();
    expect(turned, "the event loop did not have to turn").toBe(false);
    expect(await store.acquireLock("k", { ttlMs: 60_000 }), "released").toBeDefined();
  });

  it("a lock on a key does not create or touch the entry", async () => {
    const dir = tempDir();
    const store = fileCache({ dir });
    const lock = await store.acquireLock("k", { ttlMs: 1000 });
    expect(existsSync(entryFile(dir, "k"))).toBe(false);
    await lock!.release();
    expect(await store.get("k")).toBeUndefined();
  });
});

describe("fileCache with fromCache", () => {
  it("a second provider reads what the first one stored: the source is called once", async () => {
    const dir = tempDir();
    const first = await resolveThrough(fileCache({ dir }));
    expect(first.source.state.calls).toBe(1);
    const second = await resolveThrough(fileCache({ dir }));
    expect(second.identity.accessKeyId).toBe(first.identity.accessKeyId);
    expect(second.source.state.calls).toBe(0);
    expect(second.events.map((e) => e.type)).toContain("hit");
  });
});

describe("fileCache: the directory", () => {
  it("is made again, 0700, when it was removed after first use", async () => {
    const dir = join(tempDir(), "cache");
    const store = fileCache({ dir });
    await store.set("k", 1);
    fs.rmSync(dir, { recursive: true });
    expect(await store.get("k")).toBeUndefined();
    await store.set("k", 2);
    expect(await store.get("k")).toBe(2);
    expect(mode(statSync(dir))).toBe("700");
  });
});
