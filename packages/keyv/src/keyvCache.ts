import {
  assertCacheKey,
  assertLockTtl,
  CacheConfigError,
  type CacheLock,
  CacheUnavailableError,
  type CredentialCache,
  expiresAtFromTtl,
} from "@credcache/core";
import type { KeyvCacheOptions, KeyvLike } from "./types.js";

function isKeyv(value: unknown): value is KeyvLike {
  const keyv = value as Partial<KeyvLike> | null | undefined;
  return (
    typeof keyv === "object" &&
    keyv !== null &&
    typeof keyv.get === "function" &&
    typeof keyv.set === "function" &&
    typeof keyv.delete === "function"
  );
}

/**
 * A store on any Keyv 5 instance: `@keyv/redis`, `@keyv/sqlite`, `@keyv/postgres`, ...
 * Values are written as plain JSON through Keyv's serializer; TTLs in seconds become
 * Keyv's milliseconds (0 or `undefined`: no expiry). A read is one `keyv.get`.
 *
 * The Keyv instance stays the caller's: this store never changes its settings and has
 * no `close()`; disconnect it yourself. Keyv turns store errors into misses unless it
 * was created with `throwOnErrors: true`; set it so that a failing store shows up as
 * `cache-error` events instead of silent misses.
 *
 * @param keyv Your Keyv instance.
 * @param options `namespace` prefixes this store's keys; `lock` (e.g. {@link redisLock})
 *   gives the store `acquireLock`.
 * @throws {CacheConfigError} `keyv` is not a Keyv instance, or an option is malformed.
 *
 * @example
 * ```ts
 * import Keyv from "keyv";
 * import KeyvSqlite from "@keyv/sqlite";
 * import { keyvCache } from "@credcache/keyv";
 *
 * const cache = keyvCache(new Keyv({ store: new KeyvSqlite("sqlite:///var/cache/keyv.db"), throwOnErrors: true }));
 * ```
 */
export function keyvCache(keyv: KeyvLike, options: KeyvCacheOptions = {}): CredentialCache {
  if (!isKeyv(keyv)) {
    throw new CacheConfigError(
      "keyvCache: pass a Keyv instance (keyv 5), e.g. keyvCache(new Keyv({ store: new KeyvRedis(url) }))",
    );
  }
  const { namespace, lock } = options ?? {};
  if (namespace !== undefined && (typeof namespace !== "string" || namespace === "")) {
    throw new CacheConfigError(
      `keyvCache: "namespace" must be a non-empty string, got ${JSON.stringify(namespace)}`,
    );
  }
  if (lock !== undefined && typeof (lock as { acquire?: unknown } | null)?.acquire !== "function") {
    throw new CacheConfigError(
      'keyvCache: "lock" must have an acquire(key, ttlMs) method, e.g. redisLock(client)',
    );
  }
  const prefix = namespace === undefined ? "" : `${namespace}:`;

  function storeKey(key: string): string {
    const keyvNamespace = keyv.namespace;
    // Keyv leaves a key that already starts with "<its namespace>:" unprefixed, so "x" and
    // "keyv:x" would share one entry. Adding the prefix here keeps every key distinct
    // and gives the usual keys the very names Keyv would have given them.
    return keyvNamespace && keyv.useKeyPrefix !== false
      ? `${keyvNamespace}:${prefix}${key}`
      : `${prefix}${key}`;
  }

  const store: CredentialCache = {
    async get(key: string): Promise<unknown | undefined> {
      assertCacheKey(key);
      return keyv.get(storeKey(key));
    },

    async set(key: string, value: unknown, ttlSeconds?: number): Promise<void> {
      assertCacheKey(key);
      expiresAtFromTtl(ttlSeconds, 0); // only to reject a negative or non-finite TTL the way every store does
      // Whole milliseconds (Redis PX takes integers), rounded up so a tiny TTL never becomes "no expiry".
      const ttlMs = ttlSeconds ? Math.ceil(ttlSeconds * 1000) : undefined;
      const written = await keyv.set(storeKey(key), value, ttlMs);
      if (written === false) {
        throw new CacheUnavailableError("the Keyv store did not accept the write (see its error event)");
      }
    },

    async remove(key: string): Promise<void> {
      assertCacheKey(key);
      await keyv.delete(storeKey(key));
    },
  };

  if (lock) {
    store.acquireLock = async (key: string, opts: { ttlMs: number }): Promise<CacheLock | undefined> => {
      assertCacheKey(key);
      assertLockTtl(opts?.ttlMs);
      return lock.acquire(`${prefix}${key}`, opts.ttlMs);
    };
  }
  return store;
}
