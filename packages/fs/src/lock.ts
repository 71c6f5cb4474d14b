import fs, {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { type CacheLock, CacheUnavailableError, type Clock, newLockToken } from "@credcache/core";
import { openToRead } from "./entry.js";

/**
 * A try-lock with a lease, kept in a small 0600 file beside the entry (`<hash>.lease`,
 * holding `{ token, expiresAt }`). The lease file is only ever read and changed while
 * holding a mutex (`<hash>.lease.lock/`, a 0700 directory that `mkdir` creates or fails
 * to create atomically), so two processes can never both see an expired lease and both
 * take it over.
 *
 * The mutex is taken, used and dropped in one synchronous step (mkdir, read, write,
 * rmdir: microseconds), so a holder can never be held up by its own event loop, and a
 * process cannot die holding it except inside that step. Under contention a caller
 * retries a few times a few milliseconds apart, then reports the lock as busy.
 *
 * Why not proper-lockfile: its `stale` has a floor of 2000 ms and its lock is kept alive
 * by a timer for as long as the holder's process lives, so `ttlMs` could neither be
 * shorter than 2 s nor work as a lease; and loading it (with graceful-fs) and its
 * callback-and-timer retries cost more than a second per lock on a host where 64
 * processes start at once, which made waiters give up and fetch on their own.
 */

interface Lease {
  token: string;
  expiresAt: number;
}

const MAX_LEASE_BYTES = 1024;
const WRITE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0);

/** Contention on the mutex lasts microseconds; a few short retries ride it out. */
const ACQUIRE_ATTEMPTS = 8;
/** A release is worth waiting longer for: otherwise the lease stays until it expires. */
const RELEASE_ATTEMPTS = 40;
const RETRY_MS = 5;
/**
 * A mutex directory older than this was left by a process killed inside the microseconds
 * it holds it (real time: it is compared with the directory's mtime).
 */
const MUTEX_STALE_MS = 2000;

const BUSY = Symbol("busy");

/** Takes the mutex, or says it is busy. Removes a mutex left behind by a dead process. */
function tryMutex(mutex: string): boolean {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      mkdirSync(mutex, 0o700);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    let ageMs: number;
    try {
      ageMs = Date.now() - lstatSync(mutex).mtimeMs;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") continue; // just freed: try again
      throw error;
    }
    if (ageMs < MUTEX_STALE_MS) return false;
    // Left by a dead process. Rename it away, then look at what was moved: if another
    // process took the stale one over first, this moved its live mutex, so put it back.
    // (A third process could still slip in between; that needs a process killed inside
    // this microsecond step and two takeovers within microseconds, and at worst gives two
    // lease holders: two fetches, never wrong credentials.)
    const aside = `${mutex}.stale-${newLockToken()}`;
    try {
      renameSync(mutex, aside);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") continue;
      throw error;
    }
    if (Date.now() - lstatSync(aside).mtimeMs < MUTEX_STALE_MS) {
      try {
        renameSync(aside, mutex);
      } catch {
        fs.rmdirSync(aside);
      }
      return false;
    }
    fs.rmdirSync(aside);
  }
  return false;
}

async function withMutex<T>(
  leaseFile: string,
  attempts: number,
  critical: () => T,
): Promise<T | typeof BUSY> {
  const mutex = `${leaseFile}.lock`;
  for (let attempt = 1; ; attempt++) {
    let taken: boolean;
    try {
      taken = tryMutex(mutex);
    } catch (error) {
      throw new CacheUnavailableError(
        `@credcache/fs cannot take the lock mutex for "${leaseFile}" (${(error as NodeJS.ErrnoException).code})`,
        { cause: error },
      );
    }
    if (taken) {
      try {
        return critical();
      } finally {
        try {
          // Looked up on the module object so tests can watch the mutex go.
          fs.rmdirSync(mutex);
        } catch {
          // Already gone (taken over as stale): nothing to free.
        }
      }
    }
    if (attempt >= attempts) return BUSY;
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS * (0.5 + Math.random())));
  }
}

/**
 * What the lease file holds: nothing, a lease, or something that is not a readable lease
 * (garbage, a FIFO, a symlink, a directory, another user's file). The last one is held
 * until its `mtime` is older than a lease: a writer may have died between creating the
 * file and writing it, or something else stands where the lease belongs, and neither
 * proves that the lock is free.
 */
type LeaseState =
  | { kind: "none" }
  | { kind: "lease"; lease: Lease }
  | { kind: "unreadable"; mtimeMs: number; reason: string };

function readLease(file: string): LeaseState {
  const opened = openToRead(file);
  if (!("fd" in opened)) {
    if (opened.code === "ENOENT") return { kind: "none" };
    return unreadable(file, opened.code ?? "cannot open it");
  }
  const { fd } = opened;
  try {
    const stats = fstatSync(fd);
    const uid = process.getuid?.();
    if (!stats.isFile()) return { kind: "unreadable", mtimeMs: stats.mtimeMs, reason: "not a regular file" };
    if (stats.size > MAX_LEASE_BYTES || (uid !== undefined && stats.uid !== uid)) {
      return { kind: "unreadable", mtimeMs: stats.mtimeMs, reason: "not a lease of ours" };
    }
    const buffer = Buffer.alloc(stats.size);
    const length = readSync(fd, buffer, 0, buffer.length, 0);
    let lease: Partial<Lease> | undefined;
    try {
      lease = JSON.parse(buffer.toString("utf8", 0, length)) as Partial<Lease>;
    } catch {}
    if (typeof lease?.token !== "string" || typeof lease.expiresAt !== "number") {
      return { kind: "unreadable", mtimeMs: stats.mtimeMs, reason: "not a lease" };
    }
    return { kind: "lease", lease: lease as Lease };
  } catch (error) {
    return unreadable(file, (error as NodeJS.ErrnoException).code ?? "cannot read it");
  } finally {
    closeSync(fd);
  }
}

/** The lease file as a name (a symlink or anything open refused), aged by its own mtime. */
function unreadable(file: string, reason: string): LeaseState {
  try {
    return { kind: "unreadable", mtimeMs: lstatSync(file).mtimeMs, reason };
  } catch {
    // Gone meanwhile: as good as no lease, but do not race for it; count it as fresh.
    return { kind: "unreadable", mtimeMs: Date.now(), reason };
  }
}

function writeLease(file: string, lease: Lease): void {
  try {
    unlinkQuietly(file);
  } catch (error) {
    throw new CacheUnavailableError(
      `@credcache/fs cannot replace the lease file "${file}" (${(error as NodeJS.ErrnoException).code}); remove it by hand`,
      { cause: error },
    );
  }
  const fd = openSync(file, WRITE_FLAGS, 0o600);
  try {
    fchmodSync(fd, 0o600);
    writeSync(fd, JSON.stringify(lease));
  } finally {
    closeSync(fd);
  }
}

function unlinkQuietly(file: string): void {
  try {
    unlinkSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
}

/** A held lease. Its `release()` removes the lease only while the lease is still its own. */
class LeaseLock implements CacheLock {
  #released = false;
  constructor(
    private readonly leaseFile: string,
    private readonly token: string,
    readonly takenOver: boolean,
    private readonly onRelease: (lock: LeaseLock) => void,
  ) {}

  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    this.onRelease(this);
    const done = await withMutex(this.leaseFile, RELEASE_ATTEMPTS, () => {
      const current = readLease(this.leaseFile);
      if (current.kind === "lease" && current.lease.token === this.token) unlinkQuietly(this.leaseFile);
    });
    if (done === BUSY) {
      throw new CacheUnavailableError(
        `@credcache/fs could not release the lock "${this.leaseFile}": its mutex stayed busy; the lease expires on its own`,
      );
    }
  }
}

/** Try-locks for one store. Tracks its held locks so `close()` can release them. */
export function leaseLocks(clock: Clock) {
  const held = new Set<LeaseLock>();
  const forget = (lock: LeaseLock) => held.delete(lock);
  return {
    async acquire(leaseFile: string, ttlMs: number): Promise<CacheLock | undefined> {
      const token = newLockToken();
      const outcome = await withMutex(leaseFile, ACQUIRE_ATTEMPTS, () => {
        const now = clock.now();
        const current = readLease(leaseFile);
        if (current.kind === "lease" && current.lease.expiresAt > now) return undefined;
        // Real time against the file's mtime: a lease we cannot read is held for one ttl.
        if (current.kind === "unreadable" && Date.now() - current.mtimeMs < ttlMs) return undefined;
        writeLease(leaseFile, { token, expiresAt: now + ttlMs });
        return { takenOver: current.kind !== "none" };
      });
      if (outcome === BUSY || outcome === undefined) return undefined;
      const lock = new LeaseLock(leaseFile, token, outcome.takenOver, forget);
      held.add(lock);
      return lock;
    },
    async releaseAll(): Promise<void> {
      await Promise.allSettled([...held].map((lock) => lock.release()));
    },
  };
}
