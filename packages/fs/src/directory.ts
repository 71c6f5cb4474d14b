import { chmodSync, lstatSync, mkdirSync, type Stats } from "node:fs";
import { homedir } from "node:os";
import { isAbsolute, join } from "node:path";
import { CacheUnavailableError } from "@credcache/core";

/** `$XDG_CACHE_HOME/credcache`, or `~/.cache/credcache` when that is unset or relative. */
export function defaultCacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg && isAbsolute(xdg) ? xdg : join(homedir(), ".cache"), "credcache");
}

function refuse(dir: string, reason: string, cause?: unknown): CacheUnavailableError {
  return new CacheUnavailableError(
    `@credcache/fs refuses the cache directory "${dir}": ${reason}`,
    cause === undefined ? undefined : { cause },
  );
}

function codeOf(error: unknown): string {
  return (error as NodeJS.ErrnoException)?.code ?? String(error);
}

/**
 * Throws unless `dir` is a real directory (not a symlink), owned by this process's
 * uid and not writable by group or others. Anyone else who could write there could
 * plant entries, swap files under us or read what we write; a symlink could point
 * the cache anywhere.
 */
function checkDirectory(dir: string, st: Stats): void {
  if (st.isSymbolicLink()) throw refuse(dir, "it is a symbolic link");
  if (!st.isDirectory()) throw refuse(dir, "it is not a directory");
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    throw refuse(dir, `it is owned by uid ${st.uid}, not by the current user (uid ${uid})`);
  }
  const loose = st.mode & 0o022;
  if (loose !== 0) {
    const who = loose === 0o022 ? "group and others" : loose === 0o020 ? "group" : "others";
    throw refuse(dir, `it is writable by ${who} (mode ${(st.mode & 0o7777).toString(8)}); chmod 700 it`);
  }
}

/**
 * Creates `dir` (and missing parents) with mode 0700 when it does not exist, then
 * checks it: one `lstat` when it exists, cheap enough to repeat before every write.
 * A directory this call creates is chmod'ed to exactly 0700 (`mkdir`'s mode is
 * filtered through the umask). An existing directory is checked, never chmod'ed.
 */
export function prepareDirectory(dir: string): void {
  let st: Stats | undefined;
  try {
    st = lstatSync(dir);
  } catch (error) {
    if (codeOf(error) !== "ENOENT") throw refuse(dir, `cannot stat it (${codeOf(error)})`, error);
  }
  if (!st) {
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      st = lstatSync(dir);
      // mkdir's mode passes through the umask; set it exactly. chmod follows symlinks,
      // so only a real directory (lstat, a moment ago) gets it.
      if (st.isDirectory()) {
        chmodSync(dir, 0o700);
        st = lstatSync(dir);
      }
    } catch (error) {
      throw refuse(dir, `cannot create it (${codeOf(error)})`, error);
    }
  }
  checkDirectory(dir, st);
}
