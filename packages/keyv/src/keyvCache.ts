import {
  assertCacheKey,
  assertLockTtl,
  CacheConfigError,
  type CacheLock,
  CacheUnavailableError,
  type CredentialCache,
  expiresAtFromTtl,
  MAX_KEY_LENGTH,
} from "@credcache/core";
import type { KeyvCacheOptions, KeyvLike } from "./types.js";

/** Where `redisLock` keeps its locks. A store whose adapter lists a whole Redis database sees them. */
const LOCK_KEY_PREFIX = "credcache:lock:";

/** What a Keyv storage adapter with listing support offers (`KeyvStoreAdapter.iterator`). */
interface IterableAdapter {
  namespace?: string;
  iterator(namespace?: string): AsyncIterable<unknown>;
}

/**
 * The raw `[key, stored]` pairs of a Keyv's store, as Keyv's own `iterator()` reads them:
 * a `Map` directly, an adapter through `iterator(namespace)` (SCAN for `@keyv/redis`,
 * pages of a SELECT for `@keyv/sqlite`).
 */
async function* storedEntries(keyv: KeyvLike): AsyncGenerator<unknown> {
  const adapter = keyv.store;
  if (adapter instanceof Map) {
    yield* [...adapter.entries()];
    return;
  }
  const iterable = adapter as Partial<IterableAdapter> | null | undefined;
  if (typeof iterable?.iterator !== "function") {
    throw new CacheUnavailableError(
      "the Keyv store can no longer list its entries: its adapter has no iterator",
    );
  }
  yield* iterable.iterator(iterable.namespace);
}

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
 * When Keyv can iterate its store (a `Map`, `@keyv/redis`, `@keyv/sqlite`, `@keyv/postgres`,
 * ...; Keyv then has `iterator`), the store also has `keys()`: this store's unexpired keys,
 * without the namespace, never a lock key. Otherwise it has no `keys` at all.
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

  /** True when `stored` decodes to a Keyv entry (`{ value, expires? }`) that has not expired. */
  async function isLiveEntry(stored: unknown): Promise<boolean> {
    // Missing: the key went between the listing and the read of its value (SCAN, then MGET).
    if (stored === undefined || stored === null) return false;
    let data: unknown;
    try {
      data = typeof keyv.deserializeData === "function" ? await keyv.deserializeData(stored) : stored;
    } catch {
      return false; // Not what Keyv writes (a lock token, garbage): not an entry.
    }
    if (typeof data !== "object" || data === null || !("value" in data)) return false;
    const { expires } = data as { expires?: unknown };
    // Keyv's own get() takes an entry for expired once `expires < Date.now()`.
    return typeof expires !== "number" || expires >= Date.now();
  }

  // Only when Keyv itself can iterate its store; then `keys` reads the adapter's listing
  // directly. Keyv's iterator() would do for most stores, but it deletes the expired
  // entries it meets while listing, which makes @keyv/sqlite's LIMIT/OFFSET pages skip live
  // ones, it throws on a value that is gone or not JSON, and it strips the first
  // ":"-separated part of every key whatever the namespace.
  if (typeof keyv.iterator === "function") {
    store.keys = async (): Promise<string[]> => {
      // Every key of this store is stored as `<head><key>`, exactly the key Keyv hands its adapter.
      const head = storeKey("");
      const found = new Set<string>(); // SCAN may return a key more than once
      for await (const entry of storedEntries(keyv)) {
        if (!Array.isArray(entry)) continue;
        const [raw, stored] = entry as [unknown, unknown];
        if (typeof raw !== "string" || !raw.startsWith(head) || raw.startsWith(LOCK_KEY_PREFIX)) continue;
        const key = raw.slice(head.length);
        if (key === "" || key.length > MAX_KEY_LENGTH || found.has(key)) continue;
        if (await isLiveEntry(stored)) found.add(key);
      }
      return [...found];
    };
  }

  if (lock) {
    store.acquireLock = async (key: string, opts: { ttlMs: number }): Promise<CacheLock | undefined> => {
      assertCacheKey(key);
      assertLockTtl(opts?.ttlMs);
      return lock.acquire(`${prefix}${key}`, opts.ttlMs);
    };
  }
  return store;
}
