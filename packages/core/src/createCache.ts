import { existsSync, readFileSync, realpathSync } from "node:fs";
import { createRequire } from "node:module";
import { isAbsolute, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { encryptedCache } from "./encryptedCache.js";
import { CacheConfigError, MissingAdapterError } from "./errors.js";
import { describeValue } from "./redact.js";
import type { CredentialCache } from "./types.js";

/** Options every driver accepts. */
interface CommonStoreConfig {
  /**
   * Encrypt records at rest (AES-256-GCM). The first key encrypts; every key decrypts.
   * Keys are 32 random bytes: a Buffer, 44 base64 or 64 hex characters (`openssl rand -base64 32`).
   */
  encryptionKeys?: Array<string | Uint8Array>;
  /**
   * The store's namespace. Redis and Keyv: the key prefix. With `encryptionKeys`, every
   * driver binds it into each record, so a record copied to a store with another namespace
   * (staging to prod) fails to open.
   * @default "credcache"
   */
  namespace?: string;
}

export type MemoryStoreConfig = CommonStoreConfig & { driver: "memory"; max?: number };
export type FileStoreConfig = CommonStoreConfig & { driver: "file"; dir?: string };
export type SqliteStoreConfig = CommonStoreConfig & { driver: "sqlite"; path: string };
/** A caller's own Keyv instance (any Keyv store). */
export type KeyvStoreConfig = CommonStoreConfig & {
  driver: "keyv";
  keyv: unknown;
};
/** Redis through `@credcache/keyv`'s `createRedisCache` (its own client), with the Redis lock. */
export type RedisStoreConfig = CommonStoreConfig & {
  driver: "redis";
  url: string;
  /** Use the Redis lock (`SET NX PX`). @default true */
  lock?: boolean;
};

/** One store, by driver. Extra properties are passed to the adapter's factory. */
export type StoreConfig = (
  | MemoryStoreConfig
  | FileStoreConfig
  | SqliteStoreConfig
  | KeyvStoreConfig
  | RedisStoreConfig
) &
  Record<string, unknown>;

/**
 * Laravel `config/cache.php` style: named stores and the name of the default one.
 *
 * @example
 * ```ts
 * { default: "file", stores: { file: { driver: "file" }, redis: { driver: "redis", url: "redis://127.0.0.1:6379" } } }
 * ```
 */
export interface CacheStoresConfig {
  default: string;
  stores: Record<string, StoreConfig | string>;
}

/** A URL (`memory:`, `file:///dir`, `sqlite:///path.db`, `redis://host:port`), a store, or named stores. */
export type CacheConfig = string | StoreConfig | CacheStoresConfig;

const DRIVERS = {
  memory: { pkg: "@credcache/memory", factory: "memoryCache" },
  file: { pkg: "@credcache/fs", factory: "fileCache" },
  sqlite: { pkg: "@credcache/sqlite", factory: "sqliteCache" },
  keyv: { pkg: "@credcache/keyv", factory: "keyvCache" },
  redis: { pkg: "@credcache/keyv", factory: "createRedisCache" },
} as const;

type Driver = keyof typeof DRIVERS;

const URL_HELP =
  "Use memory:, file:///absolute/dir, sqlite:///absolute/path.db or redis://host:port (rediss:// for TLS)";

/**
 * Hides the credentials of a URL before it goes into an error message: everything
 * between the scheme and the last `@`. A password may hold `@`, `#`, `?` or `/`
 * unencoded, so no URL parser can be trusted to find where it ends.
 */
export function redactUrl(url: string): string {
  const at = url.lastIndexOf("@");
  if (at === -1) return url;
  const scheme = /^[a-z][a-z0-9+.-]*:(?:\/\/)?/i.exec(url)?.[0] ?? "";
  return `${scheme}***@${url.slice(at + 1)}`;
}

/** Largest `max` the memory driver accepts: lru-cache allocates its slots up front. */
export const MAX_MEMORY_ENTRIES = 1_000_000;

/** The adapter packages `createCache` can load, by package name. */
export type AdapterPackage = (typeof DRIVERS)[Driver]["pkg"];

/**
 * True when `error` says that `pkg` itself cannot be found: not when the adapter was found
 * and one of its own dependencies is missing (that error must reach the user as it is).
 */
function isAdapterMissing(error: unknown, pkg: string): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (code !== "ERR_MODULE_NOT_FOUND" && code !== "MODULE_NOT_FOUND") return false;
  const text = String(message);
  return text.includes(`'${pkg}'`);
}

/**
 * The application's entry module (`node app.js` gives `app.js`), with symlinks resolved as
 * Node resolves the main module. Undefined under `node -e`, a REPL, or stdin.
 */
function applicationEntry(): string | undefined {
  const entry = process.argv[1];
  if (!entry || !isAbsolute(entry)) return undefined;
  try {
    return realpathSync(entry);
  } catch {
    return undefined;
  }
}

/** Imports `pkg` as the application would: found in the node_modules above its entry module, ESM build first. */
async function importFromApplication(pkg: string, entry: string): Promise<unknown> {
  const require = createRequire(entry);
  // A package need not export ./package.json: look for it where Node's lookup would.
  const dir = (require.resolve.paths(pkg) ?? [])
    .map((modules) => join(modules, pkg))
    .find((candidate) => existsSync(join(candidate, "package.json")));
  if (dir === undefined) return require(pkg); // throws MODULE_NOT_FOUND naming pkg
  const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
    exports?: { ".": { import?: string | { default?: string } } };
    module?: string;
  };
  const esm = manifest.exports?.["."]?.import;
  const file = (typeof esm === "string" ? esm : esm?.default) ?? manifest.module;
  return import(pathToFileURL(file ? join(dir, file) : require.resolve(pkg)).href);
}

/**
 * Loads an adapter package: the module passed in `adapters`, else `importAdapter` (or a
 * plain import from beside `@credcache/core`), else the copy the application's entry module
 * would import. Never from the working directory: a `node_modules` planted there is not
 * the application's. A missing dependency of a found adapter is thrown as it is.
 */
async function loadAdapter(
  pkg: AdapterPackage,
  driver: string,
  options: CreateCacheOptions,
): Promise<Record<string, unknown>> {
  const given = options.adapters?.[pkg];
  if (given !== undefined) {
    if (typeof given !== "object" || given === null) {
      throw new CacheConfigError(
        `adapters["${pkg}"] must be the module, e.g. { "${pkg}": await import("${pkg}") }`,
      );
    }
    return given as Record<string, unknown>;
  }
  let firstError: unknown;
  try {
    return (await (options.importAdapter ? options.importAdapter(pkg) : import(pkg))) as Record<
      string,
      unknown
    >;
  } catch (error) {
    if (!isAdapterMissing(error, pkg)) throw error;
    firstError = error;
  }
  const entry = applicationEntry();
  if (entry !== undefined) {
    try {
      return (await importFromApplication(pkg, entry)) as Record<string, unknown>;
    } catch (error) {
      if (!isAdapterMissing(error, pkg)) throw error;
    }
  }
  throw new MissingAdapterError(pkg, driver, { cause: firstError });
}

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
      const max = positiveInteger(url.searchParams.get("max"), "max", text);
      if (max !== undefined && max > MAX_MEMORY_ENTRIES) {
        throw new CacheConfigError(
          `max in "${redactUrl(text)}" must be at most ${MAX_MEMORY_ENTRIES}, got ${max}`,
        );
      }
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
      // sqlite:///abs/path.db (absolute) or sqlite:relative/path.db
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
      if (path === "" || path === "/" || path.endsWith("/")) {
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

function isStoresConfig(config: object): config is CacheStoresConfig {
  return "stores" in config || "default" in config;
}

/** Picks the store config out of any accepted form. */
export function resolveStoreConfig(config: CacheConfig | undefined, storeName?: string): StoreConfig {
  if (config === undefined || config === null) {
    const env = process.env.CREDCACHE_URL;
    if (!env) {
      throw new CacheConfigError(
        `No cache configured: pass a config to createCache() or set CREDCACHE_URL. ${URL_HELP}`,
      );
    }
    return parseCacheUrl(env);
  }
  if (typeof config === "string") return parseCacheUrl(config);
  if (typeof config !== "object" || Array.isArray(config)) {
    throw new CacheConfigError(
      `A cache config must be a URL string or an object with a "driver", got ${Array.isArray(config) ? "an array" : typeof config}`,
    );
  }
  if (isStoresConfig(config)) {
    const { stores } = config;
    if (typeof stores !== "object" || stores === null || Array.isArray(stores)) {
      throw new CacheConfigError(
        '"stores" must be an object of named store configs, e.g. { file: { driver: "file" } }',
      );
    }
    const name = storeName ?? config.default;
    if (typeof name !== "string" || name === "") {
      throw new CacheConfigError(
        'Named stores need a "default" store name, e.g. { default: "file", stores: { ... } }',
      );
    }
    if (!Object.hasOwn(stores, name)) {
      throw new CacheConfigError(
        `No store named "${name}" in "stores"; the stores are: ${Object.keys(stores).join(", ") || "(none)"}`,
      );
    }
    const picked = stores[name];
    if (typeof picked === "object" && picked !== null && isStoresConfig(picked)) {
      throw new CacheConfigError(`Store "${name}" must be a single store, not named stores`);
    }
    return resolveStoreConfig(picked as StoreConfig | string);
  }
  const { driver } = config as { driver?: unknown };
  if (typeof driver !== "string" || !Object.hasOwn(DRIVERS, driver)) {
    throw new CacheConfigError(
      `Unknown cache driver ${describeValue(driver)}; use one of: ${Object.keys(DRIVERS).join(", ")}`,
    );
  }
  return config as StoreConfig;
}

function checkStoreConfig(config: StoreConfig): void {
  const c = config as Record<string, unknown>;
  switch (config.driver) {
    case "memory":
      if (
        c.max !== undefined &&
        !(Number.isInteger(c.max) && (c.max as number) > 0 && (c.max as number) <= MAX_MEMORY_ENTRIES)
      ) {
        throw new CacheConfigError(
          `memory driver: "max" must be a positive integer up to ${MAX_MEMORY_ENTRIES}, got ${describeValue(c.max)}`,
        );
      }
      break;
    case "file":
      if (c.dir !== undefined && (typeof c.dir !== "string" || c.dir === "")) {
        throw new CacheConfigError(
          `file driver: "dir" must be a non-empty path, got ${describeValue(c.dir)}`,
        );
      }
      break;
    case "sqlite":
      if (typeof c.path !== "string" || c.path === "") {
        throw new CacheConfigError(
          `sqlite driver: "path" must be the database file, e.g. "/var/cache/credcache.db", got ${describeValue(c.path)}`,
        );
      }
      break;
    case "keyv":
      if (typeof c.keyv !== "object" || c.keyv === null) {
        throw new CacheConfigError(
          'keyv driver: pass your Keyv instance as "keyv", e.g. { driver: "keyv", keyv }',
        );
      }
      break;
    case "redis":
      if (typeof c.url !== "string" || !/^rediss?:\/\//.test(c.url)) {
        throw new CacheConfigError('redis driver: "url" must be a redis:// or rediss:// URL');
      }
      break;
  }
  if (c.encryptionKeys !== undefined && (!Array.isArray(c.encryptionKeys) || c.encryptionKeys.length === 0)) {
    throw new CacheConfigError('"encryptionKeys" must be a non-empty array of 32-byte keys');
  }
}

/** Options of {@link createCache}. */
export interface CreateCacheOptions {
  /** With named stores: which one (defaults to `default`). */
  store?: string;
  /**
   * Adapter modules you have imported yourself, by package name. The surest way when
   * `@credcache/core` is installed apart from your application (a global tool, a strict
   * pnpm layout): nothing is resolved at all.
   *
   * @example
   * ```ts
   * const cache = await createCache("file:///var/cache/credcache", {
   *   adapters: { "@credcache/fs": await import("@credcache/fs") },
   * });
   * ```
   * @default none: adapters are imported from beside `@credcache/core`, then from your
   *   application's entry module (`process.argv[1]`), never from the working directory
   */
  adapters?: Partial<Record<AdapterPackage, unknown>>;
  /**
   * Loads an adapter package, e.g. `(name) => import(name)` from your own module, so it
   * resolves from there. Used when `adapters` does not hold the package.
   * @default import() from beside @credcache/core, then from the application's entry module
   */
  importAdapter?: (packageName: string) => Promise<unknown>;
}

/**
 * Resolves a config to a store, loading the adapter package lazily.
 *
 * @param config A URL, a `{ driver, ... }` object, or Laravel-style named stores.
 *   When omitted, `CREDCACHE_URL` is read.
 * @param options Which named store, and how to load adapters.
 * @throws {CacheConfigError} malformed config; the message says what to fix.
 * @throws {MissingAdapterError} the adapter package is not installed; names the package.
 *
 * Adapters come from `options.adapters`, else from beside `@credcache/core`, else from the
 * application's entry module; never from the working directory.
 *
 * @example
 * ```ts
 * const cache = await createCache("sqlite:///var/cache/credcache.db");
 * const cache2 = await createCache({ driver: "file", dir: "/var/cache/credcache" });
 * const cache3 = await createCache(); // from CREDCACHE_URL
 * ```
 */
export async function createCache(
  config?: CacheConfig,
  options: CreateCacheOptions = {},
): Promise<CredentialCache> {
  const resolved = resolveStoreConfig(config, options.store);
  checkStoreConfig(resolved);
  const { driver, encryptionKeys, namespace, ...rest } = resolved as StoreConfig & { driver: Driver };
  if (namespace !== undefined && (typeof namespace !== "string" || namespace === "")) {
    throw new CacheConfigError(`"namespace" must be a non-empty string, got ${describeValue(namespace)}`);
  }
  const { pkg, factory } = DRIVERS[driver];
  const adapter = await loadAdapter(pkg, driver, options);
  const create = adapter[factory];
  if (typeof create !== "function") {
    throw new CacheConfigError(
      `${pkg} does not export ${factory}(); install a version that matches @credcache/core`,
    );
  }
  let store: CredentialCache;
  // Only the Keyv drivers have a namespace of their own; the others use it for encryption alone.
  const withNamespace =
    namespace !== undefined && (driver === "keyv" || driver === "redis") ? { namespace } : {};
  if (driver === "keyv") {
    const { keyv, ...keyvOptions } = rest as { keyv: unknown };
    store = await create(keyv, { ...keyvOptions, ...withNamespace });
  } else {
    store = await create({ ...rest, ...withNamespace });
  }
  return encryptionKeys
    ? encryptedCache(store, { keys: encryptionKeys, namespace: namespace ?? "credcache" })
    : store;
}
