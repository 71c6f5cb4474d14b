import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import type { CacheConfig } from "@credcache/config";
import { messageOf, UsageError } from "./errors.js";

/** Where the cache configuration came from, ready for `createCache(config, { store })` of @credcache/config. */
export interface CacheSpec {
  config: CacheConfig;
  /** With named stores: which one (`--store`). */
  store?: string;
  /** For messages and `inspect`: the URL (password hidden) or the config file and store. */
  label: string;
}

/** The flags every command that opens a store accepts. */
export interface StoreFlags {
  cache?: string | undefined;
  config?: string | undefined;
  store?: string | undefined;
}

/** Config files are a few hundred bytes; anything near this is not one. */
const MAX_CONFIG_BYTES = 256 * 1024;

const HOW_TO_CONFIGURE =
  "pass --cache URL (e.g. file:///var/cache/credcache), --config FILE, or set CREDCACHE_URL or CREDCACHE_CONFIG";

/**
 * The URL for messages and `inspect`: the user name stays, what follows it up to the last
 * "@" is masked (a password may hold "@" or "/" unencoded), and user info without a ":"
 * (a bare token) is masked whole.
 */
function hidePassword(url: string): string {
  const start = url.indexOf("//") + 2;
  const at = url.lastIndexOf("@");
  if (start < 2 || at < start) return url;
  const colon = url.indexOf(":", start);
  const user = colon !== -1 && colon < at ? url.slice(start, colon + 1) : "";
  return `${url.slice(0, start)}${user}***${url.slice(at)}`;
}

/**
 * Picks the cache configuration. Flags beat the environment; a URL beats a config file:
 * `--cache`, `--config`, `CREDCACHE_URL`, `CREDCACHE_CONFIG`.
 */
export function resolveCacheSpec(
  flags: StoreFlags,
  env: Record<string, string | undefined>,
  cwd: string,
): CacheSpec {
  if (flags.cache !== undefined && flags.config !== undefined) {
    throw new UsageError("pass either --cache or --config, not both");
  }
  const url = flags.cache ?? (flags.config === undefined ? env.CREDCACHE_URL || undefined : undefined);
  if (url !== undefined) {
    if (flags.store !== undefined) {
      throw new UsageError(
        `--store picks a named store from a config file (--config or CREDCACHE_CONFIG); it cannot be used with the URL "${hidePassword(url)}"`,
      );
    }
    return { config: url, label: hidePassword(url) };
  }
  const path = flags.config ?? (env.CREDCACHE_CONFIG || undefined);
  if (path === undefined) throw new UsageError(`no cache configured: ${HOW_TO_CONFIGURE}`);
  const file = resolve(cwd, path);
  const config = readConfigFile(file);
  if (flags.store !== undefined && !("stores" in config)) {
    throw new UsageError(
      `--store ${flags.store}: ${file} holds a single store; named stores look like { "default": "file", "stores": { "file": { "driver": "file" } } }`,
    );
  }
  const store = flags.store ?? (typeof config.default === "string" ? config.default : undefined);
  return {
    config: resolveRelativePaths(config, dirname(file)) as CacheConfig,
    ...(flags.store !== undefined && { store: flags.store }),
    label: store ? `${file} (store "${store}")` : file,
  };
}

/** What a file that is not a regular file is, for the message. */
function kindOf(stats: Stats): string {
  if (stats.isFIFO()) return "a FIFO";
  if (stats.isDirectory()) return "a directory";
  if (stats.isSocket()) return "a socket";
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return "a device";
  return "not a regular file";
}

/**
 * Reads a JSON config file with a size cap. Every failure is a one-line {@link UsageError}.
 * The file is opened non-blocking and must be a regular file: opening a FIFO for reading
 * would otherwise wait forever for a writer.
 */
function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  let fd: number | undefined;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
    const stats = fstatSync(fd);
    if (!stats.isFile()) {
      throw new UsageError(`config file ${file} is ${kindOf(stats)}; --config takes a regular JSON file`);
    }
    const { size } = stats;
    if (size > MAX_CONFIG_BYTES) {
      throw new UsageError(`config file ${file} is ${size} bytes; a cache config is a small JSON file`);
    }
    const buffer = Buffer.alloc(size);
    let read = 0;
    while (read < size) {
      const n = readSync(fd, buffer, read, size - read, read);
      if (n === 0) break;
      read += n;
    }
    text = buffer.toString("utf8", 0, read);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    const code = (error as { code?: string }).code;
    const reason =
      code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : messageOf(error);
    throw new UsageError(`cannot read config file ${file}: ${reason}`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`config file ${file} is not valid JSON: ${messageOf(error)}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new UsageError(
      `config file ${file} must hold a JSON object, e.g. { "default": "file", "stores": { "file": { "driver": "file", "dir": "/var/cache/credcache" } } }`,
    );
  }
  return parsed as Record<string, unknown>;
}

/**
 * Relative `dir` (file driver) and `path` (sqlite driver) in a config file are taken
 * relative to the file, not to the working directory: SDKs run `credential_process`
 * from wherever the application happens to be.
 */
function resolveRelativePaths(config: Record<string, unknown>, base: string): Record<string, unknown> {
  const fixStore = (store: unknown): unknown => {
    if (typeof store !== "object" || store === null || Array.isArray(store)) return store;
    const s = store as Record<string, unknown>;
    if (s.driver === "file" && typeof s.dir === "string" && s.dir !== "" && !isAbsolute(s.dir)) {
      return { ...s, dir: resolve(base, s.dir) };
    }
    if (s.driver === "sqlite" && typeof s.path === "string" && s.path !== "" && !isAbsolute(s.path)) {
      return { ...s, path: resolve(base, s.path) };
    }
    return s;
  };
  const { stores } = config;
  if (typeof stores === "object" && stores !== null && !Array.isArray(stores)) {
    const fixed: Record<string, unknown> = {};
    for (const [name, store] of Object.entries(stores)) fixed[name] = fixStore(store);
    return { ...config, stores: fixed };
  }
  return fixStore(config) as Record<string, unknown>;
}
