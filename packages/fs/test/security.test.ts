import { execFileSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { CacheUnavailableError } from "@credcache/core";
import { beforeAll, describe, expect, it } from "vitest";
import { describeAsOtherUser, reachableBundle } from "../../../test/support/otherUser.mjs";
import { fileCache } from "../src/index.js";
import {
  assertBuilt,
  cacheErrors,
  entryFile,
  expectRefused,
  fixture,
  mode,
  NOBODY,
  resolveThrough,
  runChild,
  tempDir,
} from "./helpers.js";

/** A valid envelope holding a credential record an attacker would like us to use. */
function planted(key: string): string {
  const now = Date.now();
  return JSON.stringify({
    key,
    value: {
      v: 1,
      accessKeyId: "ASIAPLANTED000000001",
      secretAccessKey: "planted-secret",
      expiration: now + 3_600_000,
      cachedAt: now,
    },
  });
}

/** Everything about a file an attack must not change. */
function fingerprint(file: string) {
  const st = lstatSync(file);
  return {
    content: readFileSync(file, "utf8"),
    mode: st.mode,
    uid: st.uid,
    mtimeMs: st.mtimeMs,
    ino: st.ino,
  };
}

describe("the cache directory is refused when someone else could tamper with it", () => {
  it("is running as root, so these tests check ownership by switching uid", () => {
    // The checks below use chown to another uid and a child process running as nobody.
    expect(process.getuid?.()).toBe(0);
  });

  it("refuses a directory owned by another uid, and writes nothing into it", async () => {
    const dir = join(tempDir(), "cache");
    mkdirSync(dir, { mode: 0o700 });
    chownSync(dir, NOBODY, NOBODY);
    await expectRefused(dir, /owned by uid 65534, not by the current user \(uid 0\)/);
    expect(readdirSync(dir)).toEqual([]);
    expect(statSync(dir).uid).toBe(NOBODY);
  });

  it.each([
    ["770", 0o770, /writable by group \(mode 770\)/],
    ["777", 0o777, /writable by group and others \(mode 777\)/],
    ["1777 (like /tmp)", 0o1777, /writable by group and others \(mode 1777\)/],
    ["702", 0o702, /writable by others \(mode 702\)/],
  ])("refuses a directory with mode %s and never chmods it", async (_label, dirMode, reason) => {
    const dir = join(tempDir(), "cache");
    mkdirSync(dir);
    chmodSync(dir, dirMode);
    await expectRefused(dir, reason);
    expect(readdirSync(dir)).toEqual([]);
    expect(statSync(dir).mode & 0o7777).toBe(dirMode);
  });

  it("refuses a symlinked directory, even one that points at a safe directory of ours", async () => {
    const base = tempDir();
    const real = join(base, "real");
    mkdirSync(real, { mode: 0o700 });
    const dir = join(base, "cache");
    symlinkSync(real, dir);
    await expectRefused(dir, /it is a symbolic link/);
    expect(readdirSync(real)).toEqual([]);
  });

  it("refuses a path that is a file", async () => {
    const dir = join(tempDir(), "cache");
    writeFileSync(dir, "");
    await expectRefused(dir, /it is not a directory/);
  });

  it("catches a directory swapped for a symlink after first use, on reads as on writes", async () => {
    const base = tempDir();
    const dir = join(base, "cache");
    const store = fileCache({ dir });
    await store.set("creds", { ok: true });
    expect(await store.get("creds")).toEqual({ ok: true });

    // An attacker's directory, with an entry of their own, swapped in place of ours.
    const evil = join(base, "evil");
    mkdirSync(evil, { mode: 0o755 });
    writeFileSync(entryFile(evil, "creds"), planted("creds"), { mode: 0o644 });
    chownSync(entryFile(evil, "creds"), NOBODY, NOBODY);
    chownSync(evil, NOBODY, NOBODY);
    renameSync(dir, join(base, "ours"));
    symlinkSync(evil, dir);
    const before = fingerprint(entryFile(evil, "creds"));

    await expect(store.get("creds")).rejects.toThrow(/symbolic link/);
    await expect(store.set("creds", { x: 1 })).rejects.toThrow(/symbolic link/);
    const { identity, source } = await resolveThrough(store);
    expect(source.state.calls).toBe(1);
    expect(identity.accessKeyId).not.toBe("ASIAPLANTED000000001");
    expect(fingerprint(entryFile(evil, "creds"))).toEqual(before);
    expect(readdirSync(evil)).toEqual([entryFile(evil, "creds").split("/").pop()]);
  });
});

describe("entry files are never followed, never read when not ours, never written through", () => {
  /** Plants `make(file)` as the entry of "creds"; then checks get, fromCache and the aftermath. */
  async function attack(make: (file: string) => void, reason: RegExp) {
    const dir = join(tempDir(), "cache");
    const store = fileCache({ dir });
    await store.get("warm-up"); // creates the directory
    const file = entryFile(dir, "creds");
    make(file);
    await expect(store.get("creds")).rejects.toThrow(reason);
    await expect(store.get("creds")).rejects.toBeInstanceOf(CacheUnavailableError);

    const { identity, events, source } = await resolveThrough(store);
    expect(source.state.calls).toBe(1);
    expect(identity.accessKeyId).toBe(source.state.last?.accessKeyId);
    expect(cacheErrors(events).map((e) => e.operation)).toContain("get");
    // The write replaced the planted name with a file of our own; nothing was followed.
    const st = lstatSync(file);
    expect(st.isFile()).toBe(true);
    expect(st.uid).toBe(0);
    expect(st.nlink).toBe(1);
    expect(mode(st)).toBe("600");
    const again = await resolveThrough(fileCache({ dir }));
    expect(again.source.state.calls, "the next process reads the healed entry").toBe(0);
    expect(again.identity.accessKeyId).toBe(identity.accessKeyId);
  }

  it("a symlink to /etc/passwd is neither read nor written through", async () => {
    // These tests run as root: a regression here would overwrite the machine's real
    // /etc/passwd. Prove it on a decoy first; only a passing decoy gets the real file.
    const decoy = join(tempDir(), "passwd");
    writeFileSync(decoy, readFileSync("/etc/passwd"), { mode: 0o644 });
    const decoyBefore = fingerprint(decoy);
    await attack((file) => symlinkSync(decoy, file), /is a symbolic link/);
    expect(fingerprint(decoy), "the decoy is untouched").toEqual(decoyBefore);

    const before = fingerprint("/etc/passwd");
    await attack((file) => symlinkSync("/etc/passwd", file), /is a symbolic link/);
    expect(fingerprint("/etc/passwd")).toEqual(before);
  });

  it("a symlink to another user's file holding a valid entry is neither read nor written through", async () => {
    const elsewhere = tempDir();
    const target = join(elsewhere, "theirs.json");
    writeFileSync(target, planted("creds"), { mode: 0o644 });
    chownSync(target, NOBODY, NOBODY);
    const before = fingerprint(target);
    await attack((file) => symlinkSync(target, file), /is a symbolic link/);
    expect(fingerprint(target)).toEqual(before);
  });

  it("an entry owned by another uid is not read", async () => {
    await attack((file) => {
      writeFileSync(file, planted("creds"), { mode: 0o600 });
      chownSync(file, NOBODY, NOBODY);
    }, /owned by uid 65534, not by the current user/);
  });

  it("a hard link to a file elsewhere is not read, and the file is not changed", async () => {
    const elsewhere = tempDir();
    const target = join(elsewhere, "root-owned.json");
    writeFileSync(target, planted("creds"), { mode: 0o600 });
    const before = fingerprint(target);
    await attack((file) => linkSync(target, file), /it has 2 hard links/);
    expect(fingerprint(target)).toEqual(before);
  });

  it("a FIFO does not block the read (O_NONBLOCK) and is refused", async () => {
    await attack((file) => execFileSync("mkfifo", ["-m", "600", file]), /not a regular file/);
  });

  it("a group-writable entry is not read", async () => {
    await attack((file) => {
      writeFileSync(file, planted("creds"));
      chmodSync(file, 0o660);
    }, /writable by group or others/);
  });

  it("a directory in place of an entry is refused for reads and writes", async () => {
    const dir = tempDir();
    const store = fileCache({ dir });
    mkdirSync(entryFile(dir, "creds"));
    await expect(store.get("creds")).rejects.toThrow(/not a regular file/);
    await expect(store.set("creds", 1)).rejects.toThrow(/it is a directory/);
    const { identity, source } = await resolveThrough(store);
    expect(identity.accessKeyId).toBe(source.state.last?.accessKeyId);
  });

  it("keys() lists none of the planted names, never follows or blocks on them, and removes nothing", async () => {
    const dir = tempDir();
    const store = fileCache({ dir });
    const elsewhere = tempDir();
    const target = join(elsewhere, "theirs.json");
    writeFileSync(target, planted("via-symlink"), { mode: 0o600 });
    symlinkSync(target, entryFile(dir, "via-symlink"));
    writeFileSync(entryFile(dir, "foreign"), planted("foreign"), { mode: 0o600 });
    chownSync(entryFile(dir, "foreign"), NOBODY, NOBODY);
    const linked = join(elsewhere, "linked.json");
    writeFileSync(linked, planted("hard-linked"), { mode: 0o600 });
    linkSync(linked, entryFile(dir, "hard-linked"));
    writeFileSync(entryFile(dir, "group-writable"), planted("group-writable"));
    chmodSync(entryFile(dir, "group-writable"), 0o660);
    execFileSync("mkfifo", ["-m", "600", entryFile(dir, "fifo")]);
    mkdirSync(entryFile(dir, "a-directory"));
    await store.set("ours", 1);
    const before = readdirSync(dir).sort();
    const targetBefore = fingerprint(target);

    expect(await store.keys()).toEqual(["ours"]);
    expect(readdirSync(dir).sort()).toEqual(before);
    expect(fingerprint(target)).toEqual(targetBefore);
  });

  it("prune() removes planted names without touching what they point at", async () => {
    const dir = tempDir();
    const store = fileCache({ dir });
    const before = fingerprint("/etc/passwd");
    symlinkSync("/etc/passwd", entryFile(dir, "a"));
    writeFileSync(entryFile(dir, "b"), planted("b"));
    chownSync(entryFile(dir, "b"), NOBODY, NOBODY);
    await store.set("c", 1);
    expect(await store.prune()).toBe(2);
    expect(readdirSync(dir)).toEqual([entryFile(dir, "c").split("/").pop()]);
    expect(fingerprint("/etc/passwd")).toEqual(before);
  });
});

describeAsOtherUser("as another user (a real child process running as uid 65534)", () => {
  beforeAll(assertBuilt);

  it("refuses root's cache directory yet resolves credentials from the source; its own directory works", async () => {
    const parent = tempDir();
    chmodSync(parent, 0o755); // nobody can reach the directories inside
    const rootsDir = join(parent, "root-cache");
    const root = fileCache({ dir: rootsDir });
    await root.set("creds", JSON.parse(planted("creds")).value);
    const before = fingerprint(entryFile(rootsDir, "creds"));
    const own = join(parent, "nobody-home");
    mkdirSync(own, { mode: 0o700 });
    chownSync(own, NOBODY, NOBODY);

    const result = await runChild(
      await reachableBundle(fixture("as-other-user.mjs")),
      [rootsDir, join(own, "cache")],
      {
        uid: NOBODY,
        gid: NOBODY,
        env: { PATH: process.env.PATH, HOME: own },
      },
    );
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.uid).toBe(NOBODY);
    expect(report.refused).toMatchObject({
      name: "CacheUnavailableError",
      code: "ERR_CREDCACHE_UNAVAILABLE",
    });
    expect(report.refused.message).toContain(rootsDir);
    expect(report.refused.message).toContain("owned by uid 0, not by the current user (uid 65534)");
    expect(report.viaRootsDir.accessKeyId).toMatch(/^ASIACHILD/);
    expect(report.viaRootsDir.sourceCalls).toBe(1);
    expect(report.viaRootsDir.cacheErrors).toContain("get");
    // Its own directory: created 0700, owned by it, and shared between its providers.
    expect(report.viaOwnDir.sourceCalls).toBe(1);
    expect(report.viaOwnDir.cacheErrors).toEqual([]);
    expect(report.viaOwnDir.secondProviderSourceCalls).toBe(0);
    expect(report.viaOwnDir.sameCredentials).toBe(true);
    const ownCache = statSync(join(own, "cache"));
    expect(ownCache.uid).toBe(NOBODY);
    expect(mode(ownCache)).toBe("700");
    expect(fingerprint(entryFile(rootsDir, "creds"))).toEqual(before);
  });
});
