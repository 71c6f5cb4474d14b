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

/**
 * Each driver's package and factory. The factory checks its own options (the one place each
 * driver's rules live); this package only picks it.
 */
export const DRIVERS = {
  memory: { pkg: "@credcache/memory", factory: "memoryCache" },
  file: { pkg: "@credcache/fs", factory: "fileCache" },
  sqlite: { pkg: "@credcache/sqlite", factory: "sqliteCache" },
  keyv: { pkg: "@credcache/keyv", factory: "keyvCache" },
  redis: { pkg: "@credcache/keyv", factory: "createRedisCache" },
} as const;

export type Driver = keyof typeof DRIVERS;

/** The adapter packages `createCache` can load, by package name. */
export type AdapterPackage = (typeof DRIVERS)[Driver]["pkg"];

/** What a cache URL may be, for error messages. */
export const URL_HELP =
  "Use memory:, file:///absolute/dir, sqlite:///absolute/path.db or redis://host:port (rediss:// for TLS)";
