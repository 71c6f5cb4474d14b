import { CacheConfigError, describeValue } from "@credcache/core";
import { type CacheConfig, type CacheStoresConfig, DRIVERS, type StoreConfig, URL_HELP } from "./drivers.js";
import { parseCacheUrl } from "./parseCacheUrl.js";

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
