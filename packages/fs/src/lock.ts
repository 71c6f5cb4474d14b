import fs, {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  openSync,
  readSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { type CacheLock, CacheUnavailableError, type Clock, newLockToken } from "@credcache/core";

/** Loaded on the first lock only, so a warm read pays nothing for it at start-up. */
type ProperLockfile = typeof import("proper-lockfile");
let properLockfile: Promise<ProperLockfile> | undefined;
function loadProperLockfile(): Promise<ProperLockfile> {
  properLockfile ??= import("proper-lockfile").then(
    (mod) => ((mod as { default?: ProperLockfile }).default ?? mod) as ProperLockfile,
  );
  return properLockfile;
}

/**
 * A try-lock with a lease, kept in a small 0600 file beside the entry (`<hash>.lease`,
 * holding `{ token, expiresAt }`). The lease file is only ever read and changed while
 * holding a proper-lockfile mutex (`<hash>.lease.lock/`, a 0700 directory held for
 * the microseconds of a compare-and-swap), so two processes can never both see an
 * expired lease and both take it over.
 *
 * Why not proper-lockfile alone: its `stale` has a floor of 2000 ms and its lock is kept
 * alive by a timer for as long as the holder's process lives, so `ttlMs` could neither
 * be shorter than 2 s nor work as a lease (the contract of every credcache store: taken
 * over `ttlMs` after acquisition, by the store's injectable clock). And a superseded
 * holder's `release()` in the same process would remove the new holder's lock directory.
 */

interface Lease {
  token: string;
  expiresAt: number;
}

const MAX_LEASE_BYTES = 1024;
const WRITE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0);
const READ_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);

/** proper-lockfile's `mkdir` passes no mode; make the mutex directory exactly 0700 whatever the umask. */
const mutexFs = {
  mkdir(path: string, callback: (error: NodeJS.ErrnoException | null) => void) {
    fs.mkdir(path, 0o700, (error) => {
      if (error) return callback(error);
      fs.chmod(path, 0o700, (chmodError) => {
        if (!chmodError) return callback(null);
        fs.rmdir(path, () => callback(chmodError));
      });
    });
  },
  stat: (path: string, callback: (error: NodeJS.ErrnoException | null, stats: fs.Stats) => void) =>
    fs.stat(path, callback),
  rmdir: (path: string, callback: (error: NodeJS.ErrnoException | null) => void) => fs.rmdir(path, callback),
  utimes: (path: string, atime: Date, mtime: Date, callback: (error: NodeJS.ErrnoException | null) => void) =>
    fs.utimes(path, atime, mtime, callback),
  realpath: (path: string, callback: (error: NodeJS.ErrnoException | null, resolved: string) => void) =>
    fs.realpath(path, callback),
  // proper-lockfile removes mutexes still held at process exit.
  rmdirSync: (path: string) => fs.rmdirSync(path),
};

/** Contention on the mutex lasts microseconds; a few short retries ride it out. */
const ACQUIRE_RETRIES = { retries: 8, factor: 1.5, minTimeout: 2, maxTimeout: 30, randomize: true };
/** A release is worth waiting longer for: otherwise the lease stays until it expires. */
const RELEASE_RETRIES = { retries: 30, factor: 1.5, minTimeout: 2, maxTimeout: 100, randomize: true };
/** proper-lockfile's floor. Reached only when a process died inside the compare-and-swap. */
const MUTEX_STALE_MS = 2000;

const BUSY = Symbol("busy");

async function withMutex<T>(
  leaseFile: string,
  retries: typeof ACQUIRE_RETRIES,
  critical: () => T,
): Promise<T | typeof BUSY> {
  let unlock: () => Promise<void>;
  try {
    const { lock: lockMutex } = await loadProperLockfile();
    unlock = await lockMutex(leaseFile, {
      realpath: false,
      stale: MUTEX_STALE_MS,
      retries,
      fs: mutexFs,
      // The mutex is held for microseconds; if it were ever compromised, the lease
      // compare-and-swap has already happened. Never throw from a timer.
      onCompromised: () => {},
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ELOCKED") return BUSY;
    throw new CacheUnavailableError(
      `@credcache/fs cannot take the lock mutex for "${leaseFile}" (${(error as NodeJS.ErrnoException).code})`,
      { cause: error },
    );
  }
  try {
    return critical();
  } finally {
    await unlock().catch(() => {});
  }
}

/** The current lease; `null` when the file holds something that is not a lease (takeover). */
function readLease(file: string): Lease | null | undefined {
  let fd: number;
  try {
    fd = openSync(file, READ_FLAGS);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    if (code === "ELOOP") return null;
    throw error;
  }
  try {
    const stats = fstatSync(fd);
    const uid = process.getuid?.();
    if (!stats.isFile() || stats.size > MAX_LEASE_BYTES || (uid !== undefined && stats.uid !== uid)) {
      return null;
    }
    const buffer = Buffer.alloc(stats.size);
    const length = readSync(fd, buffer, 0, buffer.length, 0);
    const lease = JSON.parse(buffer.toString("utf8", 0, length)) as Partial<Lease>;
    if (typeof lease?.token !== "string" || typeof lease.expiresAt !== "number") return null;
    return lease as Lease;
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

function writeLease(file: string, lease: Lease): void {
  unlinkQuietly(file);
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
    const done = await withMutex(this.leaseFile, RELEASE_RETRIES, () => {
      if (readLease(this.leaseFile)?.token === this.token) unlinkQuietly(this.leaseFile);
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
      const outcome = await withMutex(leaseFile, ACQUIRE_RETRIES, () => {
        const now = clock.now();
        const current = readLease(leaseFile);
        if (current && current.expiresAt > now) return undefined;
        writeLease(leaseFile, { token, expiresAt: now + ttlMs });
        return { takenOver: current !== undefined };
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
