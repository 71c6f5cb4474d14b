import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  realpathSync,
  type Stats,
  statSync,
} from "node:fs";
import { dirname, join, parse, resolve, sep } from "node:path";
import { CacheUnavailableError } from "@credcache/core";

/** Who is refusing what, for the error messages: `{ store: "@credcache/sqlite", what: "database directory" }`. */
export interface TrustedDirectoryLabel {
  /** The package that refuses, e.g. `"@credcache/fs"`. */
  store: string;
  /** What the directory is to it, e.g. `"cache directory"`. */
  what: string;
}

/** A store directory that passed the trusted-path policy; see {@link trustedDirectory}. */
export interface TrustedDirectory {
  /** The absolute path. */
  readonly path: string;
  /**
   * Throws `CacheUnavailableError` unless `path` still names the directory that passed the
   * policy: one `lstat`, compared with what the full check saw. On first use, and whenever
   * the directory was removed or anything about it changed, the full check runs again
   * (every ancestor up to `/`, then the directory itself), creating what is missing.
   */
  verify(): void;
}

/** The sticky bit: in such a directory only a name's owner (or the directory's) may rename or remove it. */
const STICKY = 0o1000;
const DIRECTORY_FLAGS = constants.O_RDONLY | (constants.O_DIRECTORY ?? 0) | (constants.O_NOFOLLOW ?? 0);

function codeOf(error: unknown): string {
  return (error as NodeJS.ErrnoException)?.code ?? String(error);
}

function octal(st: Stats): string {
  return (st.mode & 0o7777).toString(8);
}

/** Who besides the owner may write to it ("group", "others", "group and others"), or undefined. */
function writableBy(st: Stats): string | undefined {
  const loose = st.mode & 0o022;
  if (loose === 0) return undefined;
  return loose === 0o022 ? "group and others" : loose === 0o020 ? "group" : "others";
}

/**
 * A directory a store may keep secrets in, checked the way sshd's StrictModes checks
 * `~/.ssh`: every component of the path up to `/` must be writable by nobody but root
 * and the current user, except a sticky directory owned by root or us (like `/tmp`),
 * where others may add names but never rename or remove ours; the directory itself must
 * be a real directory (not a symlink), ours, and writable by nobody else. Anyone who can
 * write to an ancestor can swap the store directory for a symlink between any check and
 * any use, so only then is a one-`lstat` re-check per operation worth anything.
 *
 * Missing components are created 0700, and their mode is set through a descriptor
 * opened with `O_NOFOLLOW`, never through a path that may have changed.
 *
 * @example
 * ```ts
 * import { trustedDirectory } from "@credcache/trusted-path";
 *
 * const dir = trustedDirectory("/var/cache/myapp", { store: "myapp", what: "cache directory" });
 * dir.verify(); // throws CacheUnavailableError naming the component at fault and what to do
 * ```
 */
export function trustedDirectory(path: string, label: TrustedDirectoryLabel): TrustedDirectory {
  const dir = resolve(path);
  let known: Stats | undefined;
  return {
    path: dir,
    verify() {
      if (known !== undefined) {
        let now: Stats | undefined;
        try {
          now = lstatSync(dir);
        } catch (error) {
          if (codeOf(error) !== "ENOENT")
            throw refuse(label, dir, `cannot stat it (${codeOf(error)})`, error);
        }
        if (now && sameDirectory(now, known)) return;
        known = undefined;
      }
      try {
        known = prepareTrustedDirectory(dir, label);
      } catch (error) {
        if (error instanceof CacheUnavailableError) throw error;
        // A component removed or replaced while it was being checked.
        throw refuse(label, dir, `it changed while it was being checked (${codeOf(error)})`, error);
      }
    },
  };
}

/** Same inode, same owner, same mode: nothing a full check would judge differently. */
function sameDirectory(a: Stats, b: Stats): boolean {
  return a.ino === b.ino && a.dev === b.dev && a.mode === b.mode && a.uid === b.uid;
}

function refuse(label: TrustedDirectoryLabel, dir: string, reason: string, cause?: unknown) {
  return new CacheUnavailableError(
    `${label.store} refuses the ${label.what} "${dir}": ${reason}`,
    cause === undefined ? undefined : { cause },
  );
}

/** The full check of {@link trustedDirectory}; returns the directory's lstat. */
function prepareTrustedDirectory(dir: string, label: TrustedDirectoryLabel): Stats {
  const uid = process.getuid?.();
  const fail = (reason: string, cause?: unknown) => refuse(label, dir, reason, cause);
  checkAncestors(dirname(dir), uid, fail, new Set());
  let st: Stats | undefined;
  try {
    st = lstatSync(dir);
  } catch (error) {
    if (codeOf(error) !== "ENOENT") throw fail(`cannot stat it (${codeOf(error)})`, error);
  }
  st ??= makePrivateDirectory(dir, fail);
  if (st.isSymbolicLink()) throw fail("it is a symbolic link; point the store at the real directory");
  if (!st.isDirectory()) throw fail("it is not a directory");
  if (uid === undefined) return st;
  if (st.uid !== uid) {
    throw fail(
      `it is owned by uid ${st.uid}, not by the current user (uid ${uid}); use a directory of your own`,
    );
  }
  const who = writableBy(st);
  if (who) throw fail(`it is writable by ${who} (mode ${octal(st)}); chmod 700 it`);
  return st;
}

/**
 * Checks every component of `path` (a directory that should hold the store), from `/`
 * down, creating the missing ones 0700. A symlink among them is judged as sshd judges
 * one: trusted only when root or the current user owns it and nobody else can write to
 * the directory holding it (sticky or not: in a sticky `/tmp` another user's link is
 * still theirs to repoint, and the kernel stops following it only under
 * `fs.protected_symlinks=1`). Then every component of its target is checked the same way.
 */
function checkAncestors(
  path: string,
  uid: number | undefined,
  fail: (reason: string, cause?: unknown) => CacheUnavailableError,
  seen: Set<string>,
): void {
  const { root } = parse(path);
  const parts = path.slice(root.length).split(sep).filter(Boolean);
  let at = root;
  for (let i = 0; i <= parts.length; i++) {
    if (i > 0) at = join(at, parts[i - 1]!);
    if (seen.has(at)) continue;
    seen.add(at);
    let st: Stats;
    try {
      st = lstatSync(at);
    } catch (error) {
      if (codeOf(error) !== "ENOENT")
        throw fail(`cannot stat its ancestor "${at}" (${codeOf(error)})`, error);
      st = makePrivateDirectory(at, fail);
    }
    if (st.isSymbolicLink()) {
      const problem = uid === undefined ? undefined : untrustedLink(st, at, uid);
      if (problem) {
        throw fail(
          `its ancestor "${at}" ${problem}, so another user could repoint it at a directory of theirs; ` +
            "name the store by its real path, or keep the link where only root or you can write",
        );
      }
      let target: string;
      try {
        target = realpathSync(at);
      } catch (error) {
        throw fail(`cannot resolve its ancestor "${at}", a symbolic link (${codeOf(error)})`, error);
      }
      checkAncestors(target, uid, fail, seen);
      continue;
    }
    if (!st.isDirectory()) throw fail(`its ancestor "${at}" is not a directory`);
    if (uid === undefined) continue;
    const problem = untrustedAncestor(st, uid);
    if (problem) {
      throw fail(
        `its ancestor "${at}" ${problem}, so another user could swap the store for one of theirs; ` +
          "keep the store where every directory above it is writable only by root or you " +
          "(or is sticky, like /tmp)",
      );
    }
  }
}

/** Why an ancestor directory is not trusted (sshd's StrictModes rule), or undefined. */
function untrustedAncestor(st: Stats, uid: number): string | undefined {
  if (st.uid !== 0 && st.uid !== uid) {
    return `is owned by uid ${st.uid}, neither root nor the current user (uid ${uid})`;
  }
  const who = writableBy(st);
  if (who && (st.mode & STICKY) === 0) return `is writable by ${who} and not sticky (mode ${octal(st)})`;
  return undefined;
}

/**
 * Why a symlink on the path is not trusted, or undefined: it must be root's or ours, and
 * the directory holding it (already checked as an ancestor) writable by nobody else.
 */
function untrustedLink(st: Stats, at: string, uid: number): string | undefined {
  if (st.uid !== 0 && st.uid !== uid) {
    return `is a symbolic link owned by uid ${st.uid}, neither root nor the current user (uid ${uid})`;
  }
  const holder = statSync(dirname(at));
  const who = writableBy(holder);
  return who && `is a symbolic link in a directory writable by ${who} (mode ${octal(holder)})`;
}

/**
 * `mkdir` with 0700, then the exact mode through a descriptor: mkdir's mode passes
 * through the umask, and `chmod` on the path would follow a symlink swapped in since.
 * EEXIST (someone else made it first) is fine: the caller judges what is there.
 */
function makePrivateDirectory(
  at: string,
  fail: (reason: string, cause?: unknown) => CacheUnavailableError,
): Stats {
  try {
    mkdirSync(at, 0o700);
  } catch (error) {
    if (codeOf(error) !== "EEXIST") throw fail(`cannot create "${at}" (${codeOf(error)})`, error);
    return lstatSync(at);
  }
  let fd: number;
  try {
    fd = openSync(at, DIRECTORY_FLAGS);
  } catch (error) {
    // ELOOP/ENOTDIR: swapped for something else right after mkdir; judge what is there now.
    if (codeOf(error) === "ELOOP" || codeOf(error) === "ENOTDIR") return lstatSync(at);
    throw fail(`cannot open "${at}" after creating it (${codeOf(error)})`, error);
  }
  try {
    const st = fstatSync(fd);
    if ((st.mode & 0o7777) !== 0o700) fchmodSync(fd, 0o700);
  } finally {
    closeSync(fd);
  }
  // The path, not the descriptor: the caller must judge what the path names now.
  return lstatSync(at);
}
