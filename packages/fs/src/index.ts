import { promises as fsp } from "node:fs";
import { join, resolve } from "node:path";
import {
  assertCacheKey,
  assertLockTtl,
  CacheArgumentError,
  CacheConfigError,
  type CacheLock,
  CacheRecordError,
  CacheUnavailableError,
  type Clock,
  type CredentialCache,
  describeValue,
  expiresAtFromTtl,
} from "@credcache/core";
import { trustedDirectory } from "@credcache/trusted-path";
import { defaultCacheDir } from "./directory.js";
import {
  discardEntry,
  ENTRY_FILE,
  type Envelope,
  entryFileName,
  hashFileName,
  readEntry,
  TEMP_FILE,
  writeEntry,
} from "./entry.js";
import { leaseLocks } from "./lock.js";

// Re-exported for code that imported them from here; they live in @credcache/trusted-path.
export { type TrustedDirectory, type TrustedDirectoryLabel, trustedDirectory } from "@credcache/trusted-path";
export { defaultCacheDir } from "./directory.js";
export { entryFileName } from "./entry.js";

/** Options of {@link fileCache}. */
export interface FileCacheOptions {
  /**
   * The cache directory. Created with mode 0700 (with missing parents) when missing.
   * Refused (every call rejects with `CacheUnavailableError`, which `fromCache` reports
   * and bypasses) when it is a symlink, is not owned by the current user, or is writable
   * by group or others, or when any directory above it, up to `/`, is writable by anyone
   * but root and the current user without being sticky and owned by one of them.
   * @default `$XDG_CACHE_HOME/credcache`, or `~/.cache/credcache`
   */
  dir?: string;
  /**
   * The clock that TTLs and lock leases are measured with (epoch ms).
   * @default Date
   */
  clock?: Clock;
  /**
   * Largest entry file read or written, in bytes. `get` removes a larger file and
   * rejects with `CacheRecordError` (reason `oversized`), which `fromCache` reports as
   * `record-rejected` before asking the source. A credential record is about 1–2 KiB.
   * @default 65_536 (64 KiB)
   */
  maxFileBytes?: number;
}

/** A {@link CredentialCache} kept as one file per key in a private directory. */
export interface FileCache extends CredentialCache {
  /** The absolute path of the cache directory. */
  readonly dir: string;
  acquireLock(key: string, opts: { ttlMs: number }): Promise<CacheLock | undefined>;
  /**
   * The keys of the live entries, as given to `set`, in no particular order. Each entry
   * file is read the way `get` reads it; expired, unparseable, oversized and refused
   * files (symlinks, FIFOs, other users' files), temp files and lock files are left out.
   * Nothing is deleted: that is `prune()`'s job.
   */
  keys(): Promise<string[]>;
  /**
   * Deletes expired, unparseable and oversized entries, names planted where an entry
   * belongs (symlinks, FIFOs, other users' files: the name is unlinked, never what it
   * points at), and temp files that crashed writers left more than a minute ago.
   * Resolves to the number of names removed.
   */
  prune(): Promise<number>;
  /** Releases the locks this store still holds. The store stays usable. */
  close(): Promise<void>;
}

/** Temp files younger than this may belong to a write in progress. */
const STALE_TEMP_MS = 60_000;

/**
 * A credential store for every process on one host: one 0600 JSON file per key,
 * named by the SHA-256 of the key, in a 0700 directory that must belong to the
 * current user. Writes are atomic (temp file, fsync, rename), reads never follow
 * symlinks, and `acquireLock` is a cross-process try-lock with a lease.
 *
 * @example
 * ```ts
 * import { fromCache } from "@credcache/core";
 * import { fileCache } from "@credcache/fs";
 * import { fromInstanceMetadata } from "@aws-sdk/credential-providers";
 *
 * const credentials = fromCache({
 *   provider: fromInstanceMetadata({ maxRetries: 2 }),
 *   cache: fileCache(), // ~/.cache/credcache
 *   key: "imds",
 * });
 * ```
 */
export function fileCache(options: FileCacheOptions = {}): FileCache {
  if (options.dir !== undefined && (typeof options.dir !== "string" || options.dir === "")) {
    throw new CacheConfigError(
      `fileCache: "dir" must be a non-empty path, got ${describeValue(options.dir)}`,
    );
  }
  const dir = resolve(options.dir ?? defaultCacheDir());
  const clock = options.clock ?? Date;
  const maxFileBytes = options.maxFileBytes ?? 64 * 1024;
  if (!Number.isSafeInteger(maxFileBytes) || maxFileBytes < 64) {
    throw new CacheConfigError(
      `fileCache: maxFileBytes must be an integer of at least 64 bytes, got ${maxFileBytes}`,
    );
  }
  if (typeof clock?.now !== "function") {
    throw new CacheConfigError("fileCache: clock must have a now() method returning epoch ms");
  }
  const locks = leaseLocks(clock);
  // Every operation verifies the directory first (one lstat against what the full check
  // saw), reads included: a directory swapped for a symlink is never read through.
  const directory = trustedDirectory(dir, { store: "@credcache/fs", what: "cache directory" });
  let lastSweep = 0;

  function refused(file: string, reason: string): CacheUnavailableError {
    return new CacheUnavailableError(`@credcache/fs refuses the entry "${file}": ${reason}`);
  }

  async function sweepTempFiles(): Promise<number> {
    lastSweep = Date.now();
    let removed = 0;
    for (const name of await fsp.readdir(dir)) {
      if (!TEMP_FILE.test(name)) continue;
      const file = join(dir, name);
      try {
        // Temp-file age is real time: compare the file's mtime with the real clock.
        if (Date.now() - (await fsp.lstat(file)).mtimeMs < STALE_TEMP_MS) continue;
        await fsp.unlink(file);
        removed += 1;
      } catch {
        // Renamed or removed by its writer meanwhile.
      }
    }
    return removed;
  }

  return {
    dir,
    // Every process on this host shares it; fromCache may keep long-term keys here.
    scope: "host",

    async get(key) {
      assertCacheKey(key);
      directory.verify();
      const file = join(dir, entryFileName(key));
      let read = readEntry(file, key, maxFileBytes, clock.now());
      if (read.kind === "discard" && !discardEntry(file, read.stats)) {
        // Not the file we read any more: another process renamed a fresh entry into
        // place (or removed it). Read what is there now instead of reporting the old one.
        read = readEntry(file, key, maxFileBytes, clock.now());
        if (read.kind === "discard") discardEntry(file, read.stats);
      }
      switch (read.kind) {
        case "hit":
          return read.value;
        case "missing":
          return undefined;
        case "discard":
          if (read.code === "expired") return undefined;
          // A broken entry is not a plain miss: fromCache reports it (record-rejected).
          throw new CacheRecordError(read.code, `@credcache/fs removed the entry "${file}": ${read.reason}`);
        default:
          throw refused(file, read.reason);
      }
    },

    async set(key, value, ttlSeconds) {
      assertCacheKey(key);
      const expiresAt = expiresAtFromTtl(ttlSeconds, clock.now());
      if (value === undefined || typeof value === "function" || typeof value === "symbol") {
        throw new CacheArgumentError(`value for "${key}" must be JSON data, got ${typeof value}`);
      }
      let body: string;
      try {
        const envelope: Envelope = { key, ...(expiresAt !== undefined && { expiresAt }), value };
        body = JSON.stringify(envelope);
      } catch (error) {
        throw new CacheArgumentError(
          `value for "${key}" is not JSON-serializable: ${(error as Error).message}`,
        );
      }
      const size = Buffer.byteLength(body);
      if (size > maxFileBytes) {
        throw new CacheArgumentError(
          `value for "${key}" takes ${size} bytes as a file; maxFileBytes is ${maxFileBytes}`,
        );
      }
      directory.verify();
      if (Date.now() - lastSweep > STALE_TEMP_MS) await sweepTempFiles().catch(() => 0);
      await writeEntry(dir, entryFileName(key), body).catch((error: NodeJS.ErrnoException) => {
        // A directory where the entry belongs: rename cannot replace it.
        if (error.code === "EISDIR" || error.code === "ENOTEMPTY" || error.code === "EEXIST") {
          throw refused(join(dir, entryFileName(key)), "it is a directory");
        }
        throw error;
      });
    },

    async remove(key) {
      assertCacheKey(key);
      directory.verify();
      await fsp.unlink(join(dir, entryFileName(key))).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== "ENOENT") throw error;
      });
    },

    async acquireLock(key, opts) {
      assertCacheKey(key);
      assertLockTtl(opts?.ttlMs);
      directory.verify();
      const lease = join(dir, entryFileName(key).replace(/\.json$/, ".lease"));
      return locks.acquire(lease, opts.ttlMs);
    },

    async keys() {
      directory.verify();
      const now = clock.now();
      const found: string[] = [];
      for (const name of await fsp.readdir(dir)) {
        if (!ENTRY_FILE.test(name)) continue;
        let read: ReturnType<typeof readEntry>;
        try {
          read = readEntry(join(dir, name), undefined, maxFileBytes, now);
        } catch {
          continue; // Unreadable (EACCES, EIO): a listing goes on without it, as get would fail on it.
        }
        // A file whose name is not the hash of the key inside is never what get(key) reads:
        // listing that key would send tools after an entry that is not there.
        if (read.kind === "hit" && hashFileName(read.key) === name) found.push(read.key);
      }
      return found;
    },

    async prune() {
      directory.verify();
      let removed = await sweepTempFiles();
      const now = clock.now();
      for (const name of await fsp.readdir(dir)) {
        if (!ENTRY_FILE.test(name)) continue;
        const file = join(dir, name);
        let read: ReturnType<typeof readEntry>;
        try {
          read = readEntry(file, undefined, maxFileBytes, now);
        } catch {
          continue;
        }
        if (read.kind === "discard" && discardEntry(file, read.stats)) removed += 1;
        else if (read.kind === "refused") {
          // Not ours (a symlink, a FIFO, a foreign file): drop the name, never the target.
          try {
            await fsp.unlink(file);
            removed += 1;
          } catch {}
        }
      }
      return removed;
    },

    async close() {
      await locks.releaseAll();
    },
  };
}
