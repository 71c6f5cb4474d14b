import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import fs, {
  chmodSync,
  chownSync,
  existsSync,
  linkSync,
  lstatSync,
  readFileSync,
  renameSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { CacheUnavailableError } from "@credcache/core";
import { sqliteCache } from "@credcache/sqlite";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it, vi } from "vitest";
import { dirOf } from "../../../test/support/dirOf.mjs";
import { describeAsOtherUser, reachableBundle } from "../../../test/support/otherUser.mjs";
import { tempDir } from "./helpers.js";

const NOBODY = 65534;
const SECRET = "sqlite-secret-that-must-never-reach-another-user";
const mode = (path: string) => (statSync(path).mode & 0o7777).toString(8);

afterEach(() => {
  vi.restoreAllMocks();
  syncBuiltinESMExports();
});

/** A temp dir another user can reach (mkdtemp makes 0700). */
function reachable(): string {
  const dir = tempDir();
  chmodSync(dir, 0o755);
  return dir;
}

/** Every operation rejects with CacheUnavailableError whose message matches all of `reasons`. */
async function expectRefused(path: string, ...reasons: RegExp[]) {
  const store = sqliteCache({ path });
  for (const call of [
    () => store.get("k"),
    () => store.set("k", { secretAccessKey: SECRET }),
    () => store.acquireLock("k", { ttlMs: 1000 }),
    () => store.keys(),
  ]) {
    const error = await call().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CacheUnavailableError);
    for (const reason of reasons) expect((error as Error).message).toMatch(reason);
  }
  await store.close();
}

describe("sqliteCache: the database directory follows the trusted-path policy", () => {
  it("refuses a database under a group-writable ancestor that is not sticky, naming it, and creates nothing", async () => {
    const shared = dirOf(tempDir(), "shared", 0, 0o775);
    const path = join(shared, "app", "cache.db");
    await expectRefused(
      path,
      /@credcache\/sqlite refuses the database directory/,
      new RegExp(`its ancestor "${shared}" is writable by group and not sticky \\(mode 775\\)`),
    );
    expect(existsSync(join(shared, "app"))).toBe(false);
  });

  it("refuses a database directory that is group-writable, another user's, or a symlink", async () => {
    const base = tempDir();
    await expectRefused(join(dirOf(base, "group", 0, 0o770), "cache.db"), /writable by group \(mode 770\)/);
    await expectRefused(join(dirOf(base, "theirs", NOBODY, 0o700), "cache.db"), /owned by uid 65534/);
    const real = dirOf(base, "real", 0, 0o700);
    symlinkSync(real, join(base, "link"));
    await expectRefused(join(base, "link", "cache.db"), /it is a symbolic link/);
    expect(existsSync(join(real, "cache.db"))).toBe(false);
  });

  it("accepts a sticky root-owned ancestor (like /tmp) and creates the database directory 0700", async () => {
    const tmpLike = dirOf(tempDir(), "tmp-like", 0, 0o1777);
    const path = join(tmpLike, "mine", "cache.db");
    const store = sqliteCache({ path });
    await store.set("k", 1);
    expect(await store.get("k")).toBe(1);
    expect(mode(join(tmpLike, "mine"))).toBe("700");
    await store.close();
  });
});

describeAsOtherUser("sqliteCache: a -wal planted by another member of a shared group", () => {
  it("is never written to: the shared directory is refused, and the planter's open file holds no secret", async () => {
    // A setgid directory shared by a group: root (the victim) and uid 65534 (the attacker).
    const shared = dirOf(reachable(), "shared", 0, 0o2770, NOBODY);
    const path = join(shared, "cache.db");
    const planter = spawn(
      process.execPath,
      [
        await reachableBundle(fileURLToPath(new URL("./fixtures/plant-wal.mjs", import.meta.url))),
        `${path}-wal`,
      ],
      { uid: NOBODY, gid: NOBODY, stdio: ["pipe", "pipe", "inherit"] },
    );
    const lines = createInterface({ input: planter.stdout! })[Symbol.asyncIterator]();
    expect((await lines.next()).value).toBe("ready");
    expect(mode(`${path}-wal`)).toBe("666");

    const store = sqliteCache({ path });
    await expect(store.set("creds", { secretAccessKey: SECRET })).rejects.toThrow(
      /database directory ".*shared": it is writable by group \(mode 2770\)/,
    );
    planter.stdin!.write("read\n");
    const held = Buffer.from(String((await lines.next()).value), "base64");
    await once(planter, "exit");
    expect(held.includes(SECRET), "the secret reached the planted -wal").toBe(false);
    expect(existsSync(path), "no database was created").toBe(false);
    await store.close();
  });
});

describe("sqliteCache: -wal, -shm and -journal files that are not ours are refused", () => {
  /** Plants `make(path)` beside a database in the victim's own private directory. */
  async function planted(suffix: string, make: (file: string) => void, reason: RegExp) {
    const dir = tempDir();
    const path = join(dir, "cache.db");
    const file = path + suffix;
    make(file);
    const error = await sqliteCache({ path })
      .set("creds", { secretAccessKey: SECRET })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CacheUnavailableError);
    expect((error as Error).message).toContain(`"${file}"`);
    expect((error as Error).message).toMatch(reason);
    return { dir, path, file };
  }

  it("another user's -wal (0666) is refused and receives nothing", async () => {
    const { file } = await planted(
      "-wal",
      (f) => {
        writeFileSync(f, "");
        chownSync(f, NOBODY, NOBODY);
        chmodSync(f, 0o666);
      },
      /owned by uid 65534, not by this process/,
    );
    expect(readFileSync(file).length).toBe(0);
    expect(mode(file)).toBe("666");
  });

  it("a -shm that is a symlink is refused and not followed", async () => {
    const elsewhere = join(tempDir(), "target");
    writeFileSync(elsewhere, "untouched");
    chmodSync(elsewhere, 0o644);
    await planted("-shm", (f) => symlinkSync(elsewhere, f), /it is a symbolic link/);
    expect(readFileSync(elsewhere, "utf8")).toBe("untouched");
    expect(mode(elsewhere)).toBe("644");
  });

  it("a -wal with a second hard link is refused", async () => {
    const outside = join(tempDir(), "second-name");
    await planted(
      "-wal",
      (f) => {
        writeFileSync(f, "");
        linkSync(f, outside);
      },
      /it has 2 hard links/,
    );
    expect(readFileSync(outside).length).toBe(0);
  });

  it("a -journal that is a FIFO is refused without blocking", async () => {
    await planted("-journal", (f) => execFileSync("mkfifo", ["-m", "600", f]), /not a regular file/);
  });

  it("a -wal of our own left readable (0644) is set to 0600 before SQLite opens it", async () => {
    const dir = tempDir();
    const path = join(dir, "cache.db");
    const first = sqliteCache({ path });
    await first.set("k", 1);
    // A reader connection keeps the -wal after the store closes.
    const reader = new Database(path, { readonly: true });
    reader.prepare("SELECT 1").get();
    await first.close();
    chmodSync(`${path}-wal`, 0o644);
    const chmod = vi.spyOn(fs, "chmodSync");
    syncBuiltinESMExports();
    const again = sqliteCache({ path });
    expect(await again.get("k")).toBe(1);
    expect(mode(`${path}-wal`)).toBe("600");
    expect(chmod, "modes are set through descriptors, never through a path").not.toHaveBeenCalled();
    reader.close();
    await again.close();
  });
});

describe("sqliteCache: the file SQLite opens is the file that was checked", () => {
  /**
   * Swaps the database path for `replacement(path)` right after the store's check looked
   * at the open file (its fstat), before SQLite opens the path by name; with `restore`,
   * swaps the checked file back once SQLite has opened the path (at the store's next look
   * at the path, its lstat), so that only the descriptor SQLite holds tells.
   */
  async function swapAfterCheck(replacement: (path: string) => void, restore?: (path: string) => void) {
    const dir = tempDir();
    const path = join(dir, "cache.db");
    const setup = sqliteCache({ path });
    await setup.set("seed", 1);
    await setup.close();
    const ino = lstatSync(path).ino;
    const fstat = fs.fstatSync;
    let swapped = false;
    vi.spyOn(fs, "fstatSync").mockImplementation(((fd: number, options?: fs.StatSyncOptions) => {
      const st = fstat(fd, options as never);
      if (!swapped && (st as fs.Stats).ino === ino) {
        swapped = true;
        renameSync(path, join(dir, "moved.db"));
        replacement(path);
      }
      return st;
    }) as typeof fs.fstatSync);
    if (restore) {
      const lstat = fs.lstatSync;
      let restored = false;
      vi.spyOn(fs, "lstatSync").mockImplementation(((file: string, options?: fs.StatSyncOptions) => {
        if (swapped && !restored && file === path) {
          restored = true;
          restore(path);
          renameSync(join(dir, "moved.db"), path);
        }
        return lstat(file, options as never);
      }) as typeof fs.lstatSync);
    }
    syncBuiltinESMExports();
    const store = sqliteCache({ path });
    const error = await store.set("creds", { secretAccessKey: SECRET }).catch((e: unknown) => e);
    vi.restoreAllMocks();
    syncBuiltinESMExports();
    await store.close();
    expect(swapped).toBe(true);
    return { error, path };
  }

  /** An attacker's database, world-writable, in a directory of theirs. */
  function attackerDatabase(): string {
    const theirs = dirOf(reachable(), "theirs", NOBODY, 0o777);
    const evil = join(theirs, "evil.db");
    const db = new Database(evil);
    db.pragma("journal_mode = WAL");
    db.close();
    chownSync(evil, NOBODY, NOBODY);
    chmodSync(evil, 0o666);
    return evil;
  }

  const holdsSecret = (file: string) =>
    ["", "-wal"].some((s) => existsSync(file + s) && readFileSync(file + s).includes(SECRET));

  it("a symlink to another user's database swapped in before the open is refused, and gets nothing", async () => {
    const evil = attackerDatabase();
    const { error } = await swapAfterCheck((path) => symlinkSync(evil, path));
    expect(error).toBeInstanceOf(CacheUnavailableError);
    expect((error as Error).message).toMatch(/it was replaced between the check and the open/);
    expect(holdsSecret(evil), "the secret reached the attacker's database").toBe(false);
  });

  it("another file renamed into place before the open is refused, and gets nothing", async () => {
    const evil = attackerDatabase();
    const { error, path } = await swapAfterCheck((at) => renameSync(evil, at));
    expect(error).toBeInstanceOf(CacheUnavailableError);
    expect((error as Error).message).toMatch(/replaced between the check and the open/);
    expect(lstatSync(path).uid, "the attacker's file is what the path names now").toBe(NOBODY);
    expect(holdsSecret(path), "the secret reached the attacker's database").toBe(false);
  });

  it("another file in place only while SQLite opens the path is refused by the descriptor SQLite holds", async () => {
    const evil = attackerDatabase();
    const { error, path } = await swapAfterCheck(
      (at) => renameSync(evil, at),
      (at) => renameSync(at, evil),
    );
    expect(error).toBeInstanceOf(CacheUnavailableError);
    expect((error as Error).message).toMatch(/SQLite opened a different file than the one checked/);
    expect(lstatSync(path).uid, "the checked file is back at the path").toBe(process.getuid?.());
    expect(holdsSecret(evil), "the secret reached the attacker's database").toBe(false);
  });
});
