import type { CacheLock } from "@credcache/core";

/**
 * The part of a Keyv 5 instance that `keyvCache` uses. Any `new Keyv(...)` fits;
 * the type is structural so this package needs no type dependency on `keyv`.
 */
export interface KeyvLike {
  /**
   * With `{ raw: true }` (Keyv 5, when it has `deserializeData`) resolves to the whole
   * stored entry, `{ value, expires }`, so a stored value that is no entry can be told
   * from a miss.
   */
  get(key: string, options?: { raw?: boolean }): Promise<unknown>;
  set(key: string, value: unknown, ttl?: number): Promise<boolean>;
  delete(key: string): Promise<boolean>;
  /** Keyv's own namespace. */
  namespace?: string | undefined;
  /** Whether Keyv prefixes keys with its namespace itself. */
  useKeyPrefix?: boolean;
  disconnect?(): Promise<void>;
  /**
   * Set by Keyv when its store can list its entries (a `Map`, or an adapter with an
   * `iterator` such as `@keyv/redis` or `@keyv/sqlite`). `keyvCache` has `keys()` only then.
   */
  iterator?: unknown;
  /** Keyv's storage adapter (or `Map`); `keys()` lists entries through its `iterator`. */
  readonly store?: unknown;
  /** Keyv's decoder of a stored entry (its deserializer, and decompression). */
  deserializeData?(data: unknown): Promise<unknown>;
}

/**
 * Something that hands out cross-process locks, such as {@link redisLock}. `acquire`
 * is a try-lock: it resolves to a handle when the caller now holds the lock for
 * `key`, and to `undefined` when someone else does. A lock whose holder died must
 * free itself after `ttlMs`.
 */
export interface LockProvider {
  acquire(key: string, ttlMs: number): Promise<CacheLock | undefined>;
}

/** Options of `keyvCache`. */
export interface KeyvCacheOptions {
  /**
   * Prefix for every key this store writes (`<namespace>:<key>`), inside whatever
   * namespace the Keyv instance itself uses. Lets several stores share one Keyv.
   * Lock keys get the same prefix. Must not contain ":" (namespaces "X" and "X:" could
   * otherwise share entries): refused with a `CacheConfigError`.
   * @default none
   */
  namespace?: string;
  /**
   * Store each key as `{key}` (its refresh state as `{key}#refresh`, its lock as
   * `credcache:lock:[<namespace>:]{key}`): a Redis Cluster hash tag, so a record, its refresh
   * state and its lock share one slot and a script may touch them together. Set it for
   * `@keyv/redis` on a cluster (ElastiCache, MemoryDB, Valkey), and wherever hosts share
   * records with `createRedisCache`, which always does this. Changing it changes every
   * key's name: each key is fetched from its source once after the change.
   * @default false
   */
  hashTags?: boolean;
  /**
   * Where `acquireLock` takes its locks. Without it the store has no `acquireLock`,
   * and `fromCache` falls back to in-process single flight only.
   * @default none
   */
  lock?: LockProvider;
}

/**
 * A node-redis v4/v5 client (`createClient()`, or `keyvRedis.client` from
 * `@keyv/redis` 5), the commands `redisLock` sends through it.
 */
export interface NodeRedisClient {
  readonly isOpen: boolean;
  set(key: string, value: string, options: { NX: true; PX: number }): Promise<unknown>;
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
}

/** An ioredis client, the commands `redisLock` sends through it. */
export interface IoRedisClient {
  readonly status: string;
  set(key: string, value: string, px: "PX", ttlMs: number, nx: "NX"): Promise<unknown>;
  eval(script: string, numKeys: number, ...args: string[]): Promise<unknown>;
}

/** A Redis client `redisLock` can drive. Told apart by shape: node-redis has `isOpen`, ioredis `status`. */
export type RedisLockClient = NodeRedisClient | IoRedisClient;

/** Options of `redisLock`. */
export interface RedisLockOptions {
  /**
   * Goes into every lock key: `credcache:lock:<namespace>:<key>`. Must not contain ":".
   * @default none (`credcache:lock:<key>`)
   */
  namespace?: string;
}

/** Options of `createRedisCache`. */
export interface RedisCacheOptions {
  /** `redis://[[user]:password@]host[:port][/db]`, or `rediss://` for TLS. */
  url: string;
  /**
   * Namespace (as `@keyv/redis` names it): values live under `<namespace>::<key>` and locks under
   * `credcache:lock:<namespace>:<key>`. Must not contain ":" (refused with a `CacheConfigError`).
   * @default "credcache"
   */
  namespace?: string;
  /**
   * Take the cross-process refresh lock in Redis (`SET NX PX`), so one host in the
   * fleet refreshes per rotation.
   * @default true
   */
  lock?: boolean;
  /**
   * How long one connection attempt may take, AUTH and SELECT included. The client never
   * retries in the background: a store call that finds no connection opens one, and fails
   * (a `cache-error` for `fromCache`) if that does not succeed within this time.
   * @default 1000
   */
  connectTimeoutMs?: number;
  /**
   * How long a command may wait for its reply. Past it the connection is closed (a reply
   * cannot be skipped), every call waiting on it fails, and the next call reconnects; so a
   * Redis that accepts connections but never answers cannot hold a process open. The default
   * is the longest `cacheTimeoutMs` of core's defaults (the CLI's), so a slow Redis is never
   * given up on inside the caller's own budget.
   * @default 3000
   */
  commandTimeoutMs?: number;
}
