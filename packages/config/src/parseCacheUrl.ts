import { fileURLToPath } from "node:url";
import { CacheConfigError, redactUrl } from "@credcache/core";
import { type StoreConfig, URL_HELP } from "./drivers.js";

function positiveInteger(value: string | null, name: string, url: string): number | undefined {
  if (value === null) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) {
    throw new CacheConfigError(`${name} in "${redactUrl(url)}" must be a positive integer, got "${value}"`);
  }
  return n;
}

/** Turns a cache URL into a store config. Throws {@link CacheConfigError} that says what to fix. */
export function parseCacheUrl(input: string): StoreConfig {
  const text = input.trim();
  if (text === "") throw new CacheConfigError(`The cache URL is empty. ${URL_HELP}`);
  if (text === "memory" || text === "memory:" || text === "memory://") return { driver: "memory" };
  if (text === "file:" || text === "file://") return { driver: "file" };
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    // No `cause`: Node's URL error quotes the whole input, password included.
    throw new CacheConfigError(`"${redactUrl(text)}" is not a valid cache URL. ${URL_HELP}`);
  }
  switch (url.protocol) {
    case "memory:": {
      // Its upper limit is the memory store's to check, once (memoryCache).
      const max = positiveInteger(url.searchParams.get("max"), "max", text);
      return { driver: "memory", ...(max !== undefined && { max }) };
    }
    case "file:": {
      if (url.host !== "" && url.host !== "localhost") {
        throw new CacheConfigError(
          `"${redactUrl(text)}" names a host; a file cache URL needs three slashes and an absolute path, e.g. file:///var/cache/credcache`,
        );
      }
      try {
        return { driver: "file", dir: fileURLToPath(url) };
      } catch {
        throw new CacheConfigError(
          `"${redactUrl(text)}" is not a usable directory path (encoded "/" or NUL?), e.g. file:///var/cache/credcache`,
        );
      }
    }
    case "sqlite:": {
      // sqlite:///abs/path.db only: a URL is not relative to the working directory.
      let path: string;
      try {
        path = decodeURIComponent(url.host ? `${url.host}${url.pathname}` : url.pathname);
      } catch {
        throw new CacheConfigError(
          `"${redactUrl(text)}" has a malformed %-escape in its path, e.g. sqlite:///var/cache/credcache.db`,
        );
      }
      if (url.username || url.password) {
        throw new CacheConfigError(
          `"${redactUrl(text)}": a sqlite URL takes no user or password, e.g. sqlite:///var/cache/credcache.db`,
        );
      }
      if (url.host !== "" || !path.startsWith("/")) {
        throw new CacheConfigError(
          `"${redactUrl(text)}" is not an absolute path; a sqlite cache URL needs three slashes and an absolute path (a URL is not relative to the working directory), e.g. sqlite:///var/cache/credcache.db`,
        );
      }
      if (path === "/" || path.endsWith("/")) {
        throw new CacheConfigError(
          `"${redactUrl(text)}" has no database file name, e.g. sqlite:///var/cache/credcache.db`,
        );
      }
      return { driver: "sqlite", path };
    }
    case "redis:":
    case "rediss:": {
      if (!url.hostname) throw new CacheConfigError(`"${redactUrl(text)}" has no host. ${URL_HELP}`);
      const namespace = url.searchParams.get("namespace") ?? undefined;
      const lock = url.searchParams.get("lock");
      if (lock !== null && lock !== "true" && lock !== "false") {
        throw new CacheConfigError(`lock in "${redactUrl(text)}" must be true or false, got "${lock}"`);
      }
      url.searchParams.delete("namespace");
      url.searchParams.delete("lock");
      return {
        driver: "redis",
        url: url.toString(),
        ...(namespace && { namespace }),
        ...(lock !== null && { lock: lock === "true" }),
      };
    }
    default:
      throw new CacheConfigError(
        `Unknown cache URL scheme "${url.protocol}" in "${redactUrl(text)}". ${URL_HELP}`,
      );
  }
}
