// Issue 19 (High): a symlink above a store, owned by another user, was trusted: the check
// followed it and judged only where it pointed, while its owner could repoint it at any
// time. Both file-based stores share one policy (@credcache/trusted-path); these tests run
// it through each store, with the link made by a real other user (uid 65534).
import { execFileSync, spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CacheUnavailableError, type CredentialCache } from "@credcache/core";
import { fileCache } from "@credcache/fs";
import { sqliteCache } from "@credcache/sqlite";
import { afterEach, describe, expect, it } from "vitest";
import { dirOf } from "../support/dirOf.mjs";
import { describeAsOtherUser, reachableBundleSync } from "../support/otherUser.mjs";

const NOBODY = 65534;
const PROTECTED_SYMLINKS = "/proc/sys/fs/protected_symlinks";

const made: string[] = [];
afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A fresh directory other users can reach (mkdtemp makes 0700). */
function reachable(): string {
  const dir = mkdtempSync(join(tmpdir(), "credcache-symlinks-"));
  made.push(dir);
  chmodSync(dir, 0o755);
  return dir;
}

/** `ln -s target link`, run by uid 65534 itself. */
function symlinkAsNobody(target: string, link: string): void {
  execFileSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "ln", "-s", target, link]);
}

/**
 * Runs `body` with `fs.protected_symlinks` set to `value` when this process may write it
 * (root, a writable /proc/sys), restoring it after; otherwise with whatever it is. The policy
 * must refuse a foreign link whatever the kernel would do when following it.
 */
async function withProtectedSymlinks(value: "0" | "1", body: () => Promise<void>): Promise<void> {
  let saved: string | undefined;
  try {
    saved = readFileSync(PROTECTED_SYMLINKS, "utf8").trim();
    if (saved !== value) writeFileSync(PROTECTED_SYMLINKS, value);
  } catch {
    saved = undefined; // not Linux, or not allowed: run with the machine's setting
  }
  try {
    await body();
  } finally {
    if (saved !== undefined && saved !== value) writeFileSync(PROTECTED_SYMLINKS, saved);
  }
}

const stores: Array<{ name: string; open: (dir: string) => CredentialCache }> = [
  { name: "@credcache/fs", open: (dir) => fileCache({ dir }) },
  { name: "@credcache/sqlite", open: (dir) => sqliteCache({ path: join(dir, "creds.db") }) },
];

async function refusal(store: CredentialCache): Promise<unknown> {
  return store.set("creds", { secretAccessKey: "must-not-reach-uid-65534" }, 60).then(
    () => undefined,
    (error: unknown) => error,
  );
}

// The links are made by uid 65534 itself: without root and setpriv these are skipped with a
// line saying why (and fail under CI).
describeAsOtherUser("symlinks on the path to a store", () =>
  describe.each(stores)("$name", ({ open }) => {
    for (const setting of ["0", "1"] as const) {
      it(`refuses a link in a sticky /tmp-like directory owned by another user (protected_symlinks=${setting})`, async () => {
        await withProtectedSymlinks(setting, async () => {
          const base = reachable();
          const sticky = dirOf(base, "tmp", 0, 0o1777);
          // Where the link points now passes every check: only who owns the link is wrong.
          const target = dirOf(base, "target", 0, 0o755);
          const link = join(sticky, "X");
          symlinkAsNobody(target, link);
          const store = open(join(link, "Y"));
          const error = await refusal(store);
          expect(error).toBeInstanceOf(CacheUnavailableError);
          expect((error as Error).message).toMatch(
            new RegExp(`its ancestor "${link}" is a symbolic link owned by uid 65534`),
          );
          expect((error as Error).message).toMatch(/could repoint it/);
          expect(existsSync(join(target, "Y")), "nothing was created through the link").toBe(false);
          await store.close?.();
        });
      });
    }

    it("refuses even its own link when the directory holding it is writable by others (sticky or not)", async () => {
      const base = reachable();
      const sticky = dirOf(base, "tmp", 0, 0o1777);
      const target = dirOf(base, "target", 0, 0o755);
      symlinkSync(target, join(sticky, "X"));
      const error = await refusal(open(join(sticky, "X", "Y")));
      expect(error).toBeInstanceOf(CacheUnavailableError);
      expect((error as Error).message).toMatch(
        /is a symbolic link in a directory writable by group and others \(mode 1777\)/,
      );
    });

    it("accepts a root-owned link in a directory only root can write to", async () => {
      const base = reachable();
      const target = dirOf(base, "target", 0, 0o755);
      symlinkSync(target, join(base, "link"));
      const store = open(join(base, "link", "cache"));
      await store.set("k", { a: 1 }, 60);
      expect(await store.get("k")).toEqual({ a: 1 });
      await store.close?.();
      expect(existsSync(join(target, "cache"))).toBe(true);
    });
  }),
);

describeAsOtherUser(
  "a user's own link in its own directory is accepted (a real process of uid 65534)",
  () => {
    // The child runs a bundle in a directory uid 65534 can reach, wherever the checkout lies.
    const child = (name: string) =>
      reachableBundleSync({
        name: `own-link-${name === "@credcache/fs" ? "fs" : "sqlite"}.mjs`,
        contents: `const dir = process.argv[2];
        const store = ${
          name === "@credcache/fs"
            ? `(await import("@credcache/fs")).fileCache({ dir })`
            : `(await import("@credcache/sqlite")).sqliteCache({ path: dir + "/creds.db" })`
        };
        await store.set("k", { a: 1 }, 60);
        console.log(JSON.stringify({ uid: process.getuid(), value: await store.get("k") }));
        await store.close?.();`,
        resolveDir: fileURLToPath(new URL(".", import.meta.url)),
      });

    it.each(stores.map((s) => s.name))("%s", (name) => {
      const base = reachable();
      const home = dirOf(base, "home", NOBODY, 0o755);
      const real = dirOf(home, "real", NOBODY, 0o700);
      symlinkAsNobody(real, join(home, "link"));
      const run = spawnSync(process.execPath, [child(name), join(home, "link", "cache")], {
        uid: NOBODY,
        gid: NOBODY,
        encoding: "utf8",
        env: { PATH: process.env.PATH, HOME: home },
        timeout: 60_000,
      });
      expect(run.stderr).toBe("");
      expect(JSON.parse(run.stdout.trim())).toEqual({ uid: NOBODY, value: { a: 1 } });
    });
  },
);
