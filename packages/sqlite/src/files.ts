import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  lstatSync,
  openSync,
  readdirSync,
  readlinkSync,
  type Stats,
  statSync,
} from "node:fs";
import { CacheUnavailableError } from "@credcache/core";

/**
 * The files SQLite keeps beside the database. `-journal` is not used in WAL mode, but a
 * planted one would be read (as a hot journal to roll back) before WAL mode is read.
 */
export const SIDECARS = ["-wal", "-shm", "-journal"] as const;

/**
 * `O_NOFOLLOW`: a symlink fails with ELOOP instead of being followed. `O_NONBLOCK`: a FIFO
 * cannot block `open` (`fstat` then refuses it); nothing changes for a regular file.
 */
const NOFOLLOW = (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);
const OPEN_DATABASE = constants.O_RDWR | constants.O_CREAT | NOFOLLOW;
const OPEN_SIDECAR = constants.O_RDWR | NOFOLLOW;

function refuse(file: string, reason: string, cause?: unknown): CacheUnavailableError {
  return new CacheUnavailableError(
    `@credcache/sqlite refuses "${file}": ${reason}; remove it (if it is not yours, find out who put it there)`,
    cause === undefined ? undefined : { cause },
  );
}

/** Why a database or sidecar file is not ours to trust, or undefined. */
function untrusted(st: Stats): string | undefined {
  if (st.isSymbolicLink()) return "it is a symbolic link";
  if (!st.isFile()) return "it is not a regular file";
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    return `it is owned by uid ${st.uid}, not by this process (uid ${uid}), so it could read or change what is written`;
  }
  // A second name for the file lets whoever made it read it wherever that name is.
  if (st.nlink > 1) return `it has ${st.nlink} hard links`;
  return undefined;
}

/** Makes an open file of ours exactly 0600, through its descriptor. */
function privateMode(fd: number, st: Stats): void {
  if ((st.mode & 0o7777) !== 0o600) fchmodSync(fd, 0o600);
}

/**
 * Opens the database file (creating it 0600) with `O_NOFOLLOW`, checks it is a regular
 * file of ours with one link, and sets it to 0600. Returns the descriptor, kept open while
 * SQLite opens the same path, so that {@link verifyOpened} can compare the two.
 */
export function openDatabaseFile(path: string): { fd: number; stat: Stats } {
  let fd: number;
  try {
    fd = openSync(path, OPEN_DATABASE, 0o600);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ELOOP") throw refuse(path, "it is a symbolic link", error);
    throw new CacheUnavailableError(`sqlite cache "${path}": cannot open the file (${code})`, {
      cause: error,
    });
  }
  try {
    const stat = fstatSync(fd);
    const problem = untrusted(stat);
    if (problem) throw refuse(path, problem);
    privateMode(fd, stat);
    return { fd, stat };
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

/**
 * Refuses a `-wal`, `-shm` or `-journal` file that is not a regular file of ours with one
 * link (one planted by someone else would hand them what SQLite writes into it), and sets
 * ours to 0600. Runs before SQLite opens the database, and again once it has made them.
 *
 * Judged by `lstat`, and opened (to `fchmod`) only when the mode is wrong: closing any
 * descriptor of a file drops every POSIX lock this process holds on it, and SQLite keeps
 * one on `-shm` for as long as a connection is open. Dropping it let another process take
 * itself for the first and truncate the shared memory, which killed this one with SIGBUS.
 */
export function checkSidecars(path: string): void {
  for (const suffix of SIDECARS) {
    const file = path + suffix;
    const st = lstatSync(file, { throwIfNoEntry: false });
    if (st === undefined) continue;
    const problem = untrusted(st);
    if (problem) throw refuse(file, problem);
    if ((st.mode & 0o7777) === 0o600) continue;
    let fd: number;
    try {
      fd = openSync(file, OPEN_SIDECAR);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT") continue; // removed meanwhile (a checkpoint on close)
      if (code === "ELOOP") throw refuse(file, "it is a symbolic link", error);
      throw refuse(file, `it cannot be opened (${code})`, error);
    }
    try {
      const opened = fstatSync(fd);
      const changed = opened.ino !== st.ino || opened.dev !== st.dev;
      const reason = changed ? "it was replaced while it was checked" : untrusted(opened);
      if (reason) throw refuse(file, reason);
      privateMode(fd, opened);
    } finally {
      closeSync(fd);
    }
  }
}

/**
 * What each descriptor of this process refers to (by number), from Linux's `/proc/self/fd`;
 * undefined elsewhere. By identity, not just by number: a number free now (the listing's
 * own, for one) may be SQLite's next.
 */
export function openDescriptors(): Map<string, string | undefined> | undefined {
  let names: string[];
  try {
    names = readdirSync("/proc/self/fd");
  } catch {
    return undefined;
  }
  return new Map(names.map((fd) => [fd, identity(`/proc/self/fd/${fd}`)]));
}

/**
 * A file that has a path (SQLite's database, whatever was swapped in for it) by `dev:ino`,
 * from a stat through the link. Anything else by the link's text, which the kernel writes
 * as `pipe:[inode]`, `socket:[inode]` and so on: the inode a stat would give (or, for
 * `anon_inode:[eventfd]` and the like, the one inode they all share, which a stat cannot
 * tell apart either). So a descriptor is new exactly when a stat would say so, and one to
 * another file never matches the checked file's `dev:ino`. Most of a process's descriptors
 * are of the second kind, and each stat makes a Stats object: about 1.5 kB of garbage, and
 * stats of all of them, twice per open, came to 80 kB of the 1 MB a short CLI run can
 * allocate before its first garbage collection.
 */
function identity(link: string): string | undefined {
  let target: string;
  let st: Stats | undefined;
  try {
    target = readlinkSync(link);
    if (!target.startsWith("/")) return target;
    st = statSync(link, { throwIfNoEntry: false });
  } catch {
    return undefined; // closed meanwhile (the listing's own, another thread's file)
  }
  return st === undefined ? undefined : `${st.dev}:${st.ino}`;
}

/**
 * Throws unless the file SQLite opened is the one {@link openDatabaseFile} checked: among
 * the descriptors opened since `before`, one must be that inode (Linux); and the path must
 * still name it, not a symlink. The path was free of symlinks when checked, but SQLite
 * opens it by name again, and follows a symlink.
 */
export function verifyOpened(
  path: string,
  checked: Stats,
  before: Map<string, string | undefined> | undefined,
): void {
  const now = lstatSync(path, { throwIfNoEntry: false });
  if (now === undefined || now.isSymbolicLink() || now.dev !== checked.dev || now.ino !== checked.ino) {
    throw refuse(path, "it was replaced between the check and the open");
  }
  const after = openDescriptors();
  if (before === undefined || after === undefined) return;
  const opened = [...after].filter(([fd, id]) => id !== undefined && before.get(fd) !== id);
  // None new: SQLite reused a descriptor it kept for this inode (another connection of this
  // process closed while its locks were shared); the path check above stands.
  if (opened.length === 0) return;
  const wanted = `${checked.dev}:${checked.ino}`;
  if (!opened.some(([, id]) => id === wanted)) {
    throw refuse(path, "SQLite opened a different file than the one checked");
  }
}
