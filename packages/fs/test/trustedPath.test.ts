import { execFileSync } from "node:child_process";
import fs, {
  chmodSync,
  constants,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CacheUnavailableError } from "@credcache/core";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { dirOf } from "../../../test/support/dirOf.mjs";
import { describeAsOtherUser, reachableBundle } from "../../../test/support/otherUser.mjs";
import { fileCache } from "../src/index.js";
import {
  assertBuilt,
  collect,
  entryFile,
  expectRefused,
  fixture,
  leaseFile,
  lineFrom,
  mode,
  NOBODY,
  startChild,
  tempDir,
  withUmask,
} from "./helpers.js";

afterEach(() => {
  vi.restoreAllMocks();
  syncBuiltinESMExports();
});

/** Refused on every call, naming the ancestor at fault and what to do; nothing is created. */
async function expectAncestorRefused(dir: string, ancestor: string, reason: RegExp) {
  await expectRefused(dir, new RegExp(`its ancestor "${ancestor}"`), reason, /writable only by root or you/);
  expect(existsSync(dir), "nothing was created under the untrusted ancestor").toBe(false);
}

describe("trusted paths: every directory above the store, up to /", () => {
  it("/tmp on this machine is sticky and root's, so stores under mkdtemp pass", () => {
    const st = statSync(tmpdir());
    expect(st.uid).toBe(0);
    expect(st.mode & 0o1000).toBe(0o1000);
  });

  it("accepts a sticky, root-owned, world-writable ancestor (like /tmp)", async () => {
    const tmpLike = dirOf(tempDir(), "tmp-like", 0, 0o1777);
    const store = fileCache({ dir: join(tmpLike, "mine", "cache") });
    await store.set("k", 1);
    expect(await store.get("k")).toBe(1);
    expect(mode(statSync(join(tmpLike, "mine"))), "a missing parent is created 0700").toBe("700");
  });

  it("refuses a group-writable ancestor that is not sticky, naming it", async () => {
    const shared = dirOf(tempDir(), "shared", 0, 0o775);
    await expectAncestorRefused(
      join(shared, "cache"),
      shared,
      /is writable by group and not sticky \(mode 775\)/,
    );
  });

  it("refuses a world-writable ancestor two levels up, even when the levels below are ours and private", async () => {
    const open = dirOf(tempDir(), "open", 0, 0o777);
    const ours = dirOf(open, "ours", 0, 0o700);
    await expectAncestorRefused(
      join(ours, "cache"),
      open,
      /is writable by group and others and not sticky \(mode 777\)/,
    );
  });

  it("refuses a world-writable sticky directory owned by another user", async () => {
    const theirs = dirOf(tempDir(), "theirs", NOBODY, 0o1777);
    await expectAncestorRefused(
      join(theirs, "cache"),
      theirs,
      /is owned by uid 65534, neither root nor the current user \(uid 0\)/,
    );
  });

  it("refuses an ancestor owned by another user even when only they can write to it (0755)", async () => {
    const theirs = dirOf(tempDir(), "theirs", NOBODY, 0o755);
    await expectAncestorRefused(join(theirs, "cache"), theirs, /is owned by uid 65534/);
  });

  it("judges a symlinked ancestor by where it points: to a safe place it is fine, under a shared one it is refused", async () => {
    const base = tempDir();
    const safe = dirOf(base, "safe", 0, 0o755);
    symlinkSync(safe, join(base, "to-safe"));
    const store = fileCache({ dir: join(base, "to-safe", "cache") });
    await store.set("k", 1);
    expect(readdirSync(join(safe, "cache"))).toHaveLength(1);

    const open = dirOf(base, "open", 0, 0o777);
    const inside = dirOf(open, "inside", 0, 0o755);
    symlinkSync(inside, join(base, "to-open"));
    await expectAncestorRefused(join(base, "to-open", "cache"), open, /not sticky \(mode 777\)/);
  });
});

describeAsOtherUser("trusted paths: the ancestor-swap race, against a real other user", () => {
  beforeAll(assertBuilt);

  /** A temp dir the other user can reach (mkdtemp makes 0700). */
  function reachable(): string {
    const dir = tempDir();
    chmodSync(dir, 0o755);
    return dir;
  }

  /**
   * The victim (this process, root) stores a secret `attempts` times in `<parent>/cache`
   * while a process of uid 65534 swaps that directory for a symlink to its own directory
   * and back as fast as it can. A leak is any file in the attacker's directory that holds
   * the secret.
   */
  async function race(parent: string, attempts: number) {
    const cache = join(parent, "cache");
    mkdirSync(cache, { mode: 0o700 }); // the victim's, from an earlier run
    const attackerDir = dirOf(reachable(), "attacker", NOBODY, 0o777);
    const stop = join(reachable(), "stop");
    const swapLoop = await reachableBundle(fixture("swap-loop.mjs"));
    const attacker = startChild(swapLoop, [cache, attackerDir, stop], { uid: NOBODY, gid: NOBODY });
    const attackerDone = collect(attacker);
    await lineFrom(attacker, "ready");
    const secret = `race-secret-${Date.now()}-never-leaves-the-cache`;
    const store = fileCache({ dir: cache });
    let written = 0;
    let refused = 0;
    const otherErrors: string[] = [];
    for (let i = 0; i < attempts; i++) {
      try {
        await store.set("creds", { secretAccessKey: secret, i });
        written += 1;
      } catch (error) {
        if (error instanceof CacheUnavailableError) refused += 1;
        else otherErrors.push(String(error));
      }
    }
    writeFileSync(stop, "");
    const done = await attackerDone;
    expect(done.stderr).toBe("");
    const { swaps } = JSON.parse(done.stdout.trim().split("\n").pop()!);
    const leaked = readdirSync(attackerDir).filter((name) =>
      readFileSync(join(attackerDir, name), "utf8").includes(secret),
    );
    return { written, refused, otherErrors, swaps: swaps as number, leaked };
  }

  it("under a parent the attacker can write to, the store is refused outright: 300 writes, no leak", async () => {
    const parent = dirOf(reachable(), "shared", 0, 0o777);
    const result = await race(parent, 300);
    expect(result.swaps, "the attacker was swapping").toBeGreaterThan(0);
    expect(result.leaked, "files in the attacker's directory holding the secret").toEqual([]);
    expect(result.otherErrors).toEqual([]);
    expect(result.refused).toBe(300);
  });

  it("under a sticky root-owned parent (like /tmp) the attacker cannot swap: 300 writes land, no leak", async () => {
    const parent = dirOf(reachable(), "tmp-like", 0, 0o1777);
    const result = await race(parent, 300);
    expect(result.leaked).toEqual([]);
    expect(result.otherErrors).toEqual([]);
    expect(result.written).toBe(300);
    expect(await fileCache({ dir: join(parent, "cache") }).get("creds")).toMatchObject({ i: 299 });
  });
});

describe("trusted paths: the directory is verified on every operation", () => {
  it("a get() after the directory was swapped for a symlink does not read through it, even to files that pass every per-file check", async () => {
    const base = tempDir();
    const dir = join(base, "cache");
    const store = fileCache({ dir });
    await store.set("creds", "the real value");
    expect(await store.get("creds")).toBe("the real value");

    // A directory whose entry passes every per-file check (ours, 0600, one link).
    const elsewhere = join(base, "elsewhere");
    await fileCache({ dir: elsewhere }).set("creds", "a value from elsewhere");
    renameSync(dir, join(base, "moved"));
    symlinkSync(elsewhere, dir);

    await expect(store.get("creds")).rejects.toThrow(/cache directory ".*": it is a symbolic link/);
    await expect(store.remove("creds")).rejects.toThrow(/symbolic link/);
    await expect(store.acquireLock("creds", { ttlMs: 1000 })).rejects.toThrow(/symbolic link/);
    expect(readdirSync(elsewhere).sort(), "no lease, nothing removed").toEqual([
      entryFile(elsewhere, "creds").split("/").pop(),
    ]);
  });

  it("a directory made group-writable after first use is refused from the next call on", async () => {
    const dir = join(tempDir(), "cache");
    const store = fileCache({ dir });
    await store.set("k", 1);
    chmodSync(dir, 0o770);
    await expect(store.get("k")).rejects.toThrow(/writable by group \(mode 770\)/);
    chmodSync(dir, 0o700);
    expect(await store.get("k")).toBe(1);
  });
});

describe("trusted paths: temp files and modes", () => {
  it("temp files get random names and are created O_CREAT|O_EXCL|O_NOFOLLOW at 0600 in the checked directory", async () => {
    const dir = join(tempDir(), "cache");
    const opened: Array<{ path: string; flags: number; mode: number }> = [];
    const open = fs.promises.open;
    vi.spyOn(fs.promises, "open").mockImplementation(async (path, flags, fileMode) => {
      opened.push({ path: String(path), flags: Number(flags), mode: Number(fileMode) });
      return open(path, flags, fileMode);
    });
    const store = fileCache({ dir });
    for (let i = 0; i < 20; i++) await store.set("k", i);
    expect(opened).toHaveLength(20);
    const names = opened.map((o) => o.path.slice(dir.length + 1));
    for (const o of opened) {
      expect(o.path.startsWith(`${dir}/`)).toBe(true);
      expect(o.flags & constants.O_CREAT).toBe(constants.O_CREAT);
      expect(o.flags & constants.O_EXCL).toBe(constants.O_EXCL);
      expect(o.flags & constants.O_NOFOLLOW).toBe(constants.O_NOFOLLOW);
      expect(o.mode).toBe(0o600);
    }
    // 128 random bits, in decimal: up to 39 digits.
    for (const name of names) expect(name).toMatch(/^[0-9a-f]{64}\.json\.\d{20,39}$/);
    expect(new Set(names).size, "no name is used twice").toBe(20);
    expect(readdirSync(dir), "no temp file is left").toEqual([entryFile(dir, "k").split("/").pop()]);
  });

  it("a directory swapped for a symlink while it is being created is never chmod'ed through the symlink", async () => {
    const base = tempDir();
    const dir = join(base, "cache");
    // What a chmod through the path would reach: a file of someone else's.
    const decoy = join(base, "decoy");
    writeFileSync(decoy, "not a directory");
    chmodSync(decoy, 0o644);
    // Right after the first look at the new directory, it is swapped for a symlink.
    const lstat = fs.lstatSync;
    let swapped = false;
    vi.spyOn(fs, "lstatSync").mockImplementation(((path: fs.PathLike, options?: fs.StatSyncOptions) => {
      const st = lstat(path, options as never);
      if (!swapped && String(path) === dir && st?.isDirectory()) {
        swapped = true;
        renameSync(dir, join(base, "moved"));
        symlinkSync(decoy, dir);
      }
      return st;
    }) as typeof fs.lstatSync);
    syncBuiltinESMExports();
    await withUmask(0o077, async () => {
      await fileCache({ dir })
        .set("k", 1)
        .catch(() => {});
    });
    vi.restoreAllMocks();
    syncBuiltinESMExports();
    expect(swapped).toBe(true);
    expect(mode(statSync(decoy))).toBe("644");
    expect(readFileSync(decoy, "utf8")).toBe("not a directory");
    expect(lstatSync(dir).isSymbolicLink()).toBe(true);
  });
});

describe("leases that cannot be read", () => {
  it("a lease file replaced by a FIFO is held, without blocking, until it is older than a lease", async () => {
    const dir = join(tempDir(), "cache");
    const holder = fileCache({ dir });
    const held = await holder.acquireLock("k", { ttlMs: 60_000 });
    expect(held).toBeDefined();
    const lease = leaseFile(dir, "k");
    fs.unlinkSync(lease);
    execFileSync("mkfifo", ["-m", "600", lease]);

    const other = fileCache({ dir });
    expect(await other.acquireLock("k", { ttlMs: 60_000 }), "the holder's lease still runs").toBeUndefined();
    expect(lstatSync(lease).isFIFO(), "the FIFO is left alone").toBe(true);

    const old = new Date(Date.now() - 120_000);
    utimesSync(lease, old, old);
    const taken = await other.acquireLock("k", { ttlMs: 60_000 });
    expect(taken?.takenOver).toBe(true);
    expect(lstatSync(lease).isFile()).toBe(true);
    await taken!.release();
  });

  it("a lease file replaced by a symlink or a directory is held too, and taken over once old", async () => {
    const dir = join(tempDir(), "cache");
    const store = fileCache({ dir });
    await store.get("warm-up");
    const lease = leaseFile(dir, "k");
    symlinkSync("/etc/passwd", lease);
    expect(await store.acquireLock("k", { ttlMs: 60_000 })).toBeUndefined();
    const old = new Date(Date.now() - 120_000);
    fs.lutimesSync(lease, old, old);
    const taken = await store.acquireLock("k", { ttlMs: 60_000 });
    expect(taken?.takenOver).toBe(true);
    await taken!.release();

    mkdirSync(lease);
    expect(await store.acquireLock("k", { ttlMs: 60_000 })).toBeUndefined();
    utimesSync(lease, old, old);
    await expect(store.acquireLock("k", { ttlMs: 60_000 })).rejects.toThrow(
      /cannot replace the lease file .* remove it by hand/,
    );
  });
});
