export { type CreateCacheOptions, createCache } from "./createCache.js";
export type {
  AdapterPackage,
  CacheConfig,
  CacheStoresConfig,
  FileStoreConfig,
  KeyvStoreConfig,
  MemoryStoreConfig,
  RedisStoreConfig,
  SqliteStoreConfig,
  StoreConfig,
} from "./drivers.js";
export { parseCacheUrl } from "./parseCacheUrl.js";
export { resolveStoreConfig } from "./resolveStoreConfig.js";
