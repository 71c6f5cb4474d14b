import { createHash, randomBytes } from "node:crypto";
import {
  closeSync,
  constants,
  promises as fsp,
  fstatSync,
  lstatSync,
  openSync,
  readSync,
  type Stats,
  unlinkSync,
} from "node:fs";
import { join } from "node:path";
import { CacheUnavailableError } from "@credcache/core";

/**
 * How entry and lease files are opened to read.
 * `O_NOFOLLOW`: a symlink planted as an entry fails with ELOOP instead of being followed.
 * `O_NONBLOCK`: a FIFO planted as an entry cannot block `open` (and the event loop);
 * `fstat` then refuses it. Neither changes anything for a regular file.
 */
const READ_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);

/** Opens an entry or lease file to read; when `open` fails, its errno code and error instead of a descriptor. */
export function openToRead(file: string): { fd: number } | { code: string | undefined; error: unknown } {
  try {
    return { fd: openSync(file, READ_FLAGS) };
  } catch (error) {
    return { code: (error as NodeJS.ErrnoException).code, error };
  }
}

/** What an entry file holds. `key` lets tools list entries and catches a misplaced file. */
export interface Envelope {
  key: string;
  /** Epoch ms, by the store's clock. Absent: never expires. */
  expiresAt?: number;
  value: unknown;
}

/** The outcome of reading one entry file. */
export type EntryRead =
  | { kind: "hit"; key: string; value: unknown; expiresAt: number | undefined }
  | { kind: "missing" }
  /**
   * Expired, unparseable, a wrong envelope or over the size cap: remove it. `code` is the
   * machine reason (`CacheRecordError.reason`); `reason` the words, never the content.
   */
  | { kind: "discard"; code: DiscardCode; reason: string; stats: Stats }
  /** Not something we wrote: refuse it, never read through it. */
  | { kind: "refused"; reason: string };

/** Why an entry file is thrown away. Everything but `expired` is a broken record. */
export type DiscardCode = "expired" | "oversized" | "unparseable" | "not-an-envelope" | "wrong-key";

const names = new Map<string, string>();

/** {@link entryFileName} without the memo, for one-off names (listing) that must not evict the hot ones. */
export function hashFileName(key: string): string {
  return `${createHash("sha256").update(key).digest("hex")}.json`;
}

/** `sha256(key)` in hex + `.json`: no key can name a path outside the directory. */
export function entryFileName(key: string): string {
  let name = names.get(key);
  if (name === undefined) {
    name = hashFileName(key);
    // The hash costs more than the read of a small file; keep the few keys a process uses.
    if (names.size >= 1024) names.clear();
    names.set(key, name);
  }
  return name;
}

/**
 * Entry files, and the temp files beside them: `<entry>.<128 random bits in decimal>`, the
 * same shape as the `<entry>.<uint32>` names write-file-atomic (used before) left behind.
 */
export const ENTRY_FILE = /^[0-9a-f]{64}\.json$/;
export const TEMP_FILE = /^[0-9a-f]{64}\.json\.\d+$/;

/**
 * A new file only: `O_EXCL` fails on any name that exists (a planted file, FIFO or
 * symlink, even a dangling one), and `O_NOFOLLOW` makes sure of it for symlinks.
 */
const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (constants.O_NOFOLLOW ?? 0);

/**
 * Writes `body` as the entry `name` in `dir`, whole or not at all: a temp file with a
 * random name (128 bits from crypto, so nobody can plant anything at it beforehand) is
 * created 0600 with `O_CREAT|O_EXCL|O_NOFOLLOW`, set to exactly 0600 through its
 * descriptor (the umask may have taken bits away), written, fsync'ed, then renamed over
 * the entry. `rename` replaces whatever name is there (a symlink is replaced, never
 * followed) and stays inside `dir`, which the caller checked just before.
 */
export async function writeEntry(dir: string, name: string, body: string): Promise<void> {
  const temp = join(dir, `${name}.${BigInt(`0x${randomBytes(16).toString("hex")}`)}`);
  const handle = await fsp.open(temp, CREATE_FLAGS, 0o600);
  try {
    try {
      await handle.chmod(0o600);
      await handle.writeFile(body);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fsp.rename(temp, join(dir, name));
  } catch (error) {
    await fsp.unlink(temp).catch(() => {});
    throw error;
  }
}

/**
 * Reads one entry with synchronous calls: for a file of a few KiB, `open` + `fstat` +
 * `read` + `close` take microseconds, while each async fs call pays a libuv threadpool
 * round trip worth tens of such reads.
 */
export function readEntry(file: string, key: string | undefined, maxBytes: number, now: number): EntryRead {
  const opened = openToRead(file);
  if (!("fd" in opened)) {
    if (opened.code === "ENOENT") return { kind: "missing" };
    if (opened.code === "ELOOP") return { kind: "refused", reason: "it is a symbolic link" };
    throw new CacheUnavailableError(`@credcache/fs cannot open "${file}" (${opened.code})`, {
      cause: opened.error,
    });
  }
  const { fd } = opened;
  let text: string;
  let stats: Stats;
  try {
    stats = fstatSync(fd);
    const refusal = refusalOf(stats);
    if (refusal) return { kind: "refused", reason: refusal };
    if (stats.size > maxBytes) {
      return {
        kind: "discard",
        code: "oversized",
        reason: `it is ${stats.size} bytes, over the ${maxBytes} byte cap`,
        stats,
      };
    }
    const buffer = Buffer.allocUnsafe(stats.size);
    let length = 0;
    while (length < buffer.length) {
      const n = readSync(fd, buffer, length, buffer.length - length, length);
      if (n === 0) break;
      length += n;
    }
    text = buffer.toString("utf8", 0, length);
  } finally {
    closeSync(fd);
  }
  let envelope: unknown;
  try {
    envelope = JSON.parse(text);
  } catch {
    return { kind: "discard", code: "unparseable", reason: "it is not JSON", stats };
  }
  if (!isEnvelope(envelope)) {
    return { kind: "discard", code: "not-an-envelope", reason: "it is not a credcache entry", stats };
  }
  if (key !== undefined && envelope.key !== key) {
    return { kind: "discard", code: "wrong-key", reason: "it holds the entry of another key", stats };
  }
  if (envelope.expiresAt !== undefined && envelope.expiresAt <= now) {
    return { kind: "discard", code: "expired", reason: "it has expired", stats };
  }
  return { kind: "hit", key: envelope.key, value: envelope.value, expiresAt: envelope.expiresAt };
}

function refusalOf(stats: Stats): string | undefined {
  if (!stats.isFile()) return "it is not a regular file";
  const uid = process.getuid?.();
  if (uid !== undefined && stats.uid !== uid) {
    return `it is owned by uid ${stats.uid}, not by the current user (uid ${uid})`;
  }
  // Every entry is written by rename of a fresh file: one link, or none when a writer
  // renamed a newer one over it after we opened it (we then read the complete old one).
  // More means a hard link to some other file: a read would expose that file.
  if (stats.nlink > 1) return `it has ${stats.nlink} hard links`;
  if (stats.mode & 0o022)
    return `it is writable by group or others (mode ${(stats.mode & 0o777).toString(8)})`;
  return undefined;
}

function isEnvelope(data: unknown): data is Envelope {
  if (typeof data !== "object" || data === null || Array.isArray(data)) return false;
  const e = data as Partial<Envelope>;
  if (typeof e.key !== "string" || !("value" in e)) return false;
  return e.expiresAt === undefined || (typeof e.expiresAt === "number" && Number.isFinite(e.expiresAt));
}

/**
 * Unlinks `file` if it is still the file that was read (same inode), so a value another
 * process renamed into place meanwhile is not thrown away. Unlink never follows symlinks.
 */
export function discardEntry(file: string, read: Stats): boolean {
  try {
    const current = lstatSync(file);
    if (current.ino !== read.ino || current.dev !== read.dev) return false;
    unlinkSync(file);
    return true;
  } catch {
    return false;
  }
}
