import { CacheConfigError, type CredentialCache, describeValue, encryptedCache } from "@credcache/core";
import { type AdapterPackage, type CacheConfig, DRIVERS, type Driver, type StoreConfig } from "./drivers.js";
import { loadAdapter } from "./loadAdapter.js";
import { resolveStoreConfig } from "./resolveStoreConfig.js";

/** Options of {@link createCache}. */
export interface CreateCacheOptions {
  /** With named stores: which one (defaults to `default`). */
  store?: string;
  /**
   * Adapter modules you have imported yourself, by package name. The surest way when
   * `@credcache/config` is installed apart from your application (a global tool, a strict
   * pnpm layout): nothing is resolved at all.
   *
   * @example
   * ```ts
   * const cache = await createCache("file:///var/cache/credcache", {
   *   adapters: { "@credcache/fs": await import("@credcache/fs") },
   * });
   * ```
   * @default none: adapters are imported from beside `@credcache/config`, then from your
   *   application's entry module (`process.argv[1]`), never from the working directory
   */
  adapters?: Partial<Record<AdapterPackage, unknown>>;
  /**
   * Loads an adapter package, e.g. `(name) => import(name)` from your own module, so it
   * resolves from there. Used when `adapters` does not hold the package.
   * @default import() from beside @credcache/config, then from the application's entry module
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
 * Adapters come from `options.adapters`, else from beside `@credcache/config`, else from the
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
  const { driver, encryptionKeys, namespace, ...rest } = resolved as StoreConfig & { driver: Driver };
  if (encryptionKeys !== undefined && (!Array.isArray(encryptionKeys) || encryptionKeys.length === 0)) {
    throw new CacheConfigError('"encryptionKeys" must be a non-empty array of 32-byte keys');
  }
  if (namespace !== undefined && (typeof namespace !== "string" || namespace === "")) {
    throw new CacheConfigError(`"namespace" must be a non-empty string, got ${describeValue(namespace)}`);
  }
  const { pkg, factory } = DRIVERS[driver];
  const adapter = await loadAdapter(pkg, driver, options);
  const create = adapter[factory];
  if (typeof create !== "function") {
    throw new CacheConfigError(
      `${pkg} does not export ${factory}(); install a version that matches @credcache/config`,
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
