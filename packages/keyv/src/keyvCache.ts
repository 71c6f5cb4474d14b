import {
  assertCacheKey,
  assertLockTtl,
  CacheArgumentError,
  CacheConfigError,
  type CacheLock,
  CacheRecordError,
  CacheUnavailableError,
  type CredentialCache,
  describeValue,
  expiresAtFromTtl,
  MAX_KEY_LENGTH,
} from "@credcache/core";
import { hashTagged, untagged } from "./hashTag.js";
import { checkNamespace } from "./namespace.js";
import { LOCK_KEY_PREFIX } from "./redisLock.js";
import type { KeyvCacheOptions, KeyvLike } from "./types.js";

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

/**
 * What Keyv writes: `{ value, expires? }`, `expires` epoch ms or absent/null. Anything else
 * (`{}`, `[]`, `-1`, `Infinity`, `{ "a": 1 }`) has no value to give, only a silent miss.
 */
function isEnvelope(entry: unknown): entry is { value: unknown; expires?: number | null } {
  if (typeof entry !== "object" || entry === null || Array.isArray(entry)) return false;
  if (!Object.hasOwn(entry, "value")) return false;
  const { expires } = entry as { expires?: unknown };
  return expires === undefined || expires === null || typeof expires === "number";
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
 * Keyv's milliseconds (0 or `undefined`: no expiry). A read is one `keyv.get(key, { raw: true })`:
 * a stored value that is not a Keyv entry (`{}`, `[]`, `-1`, not JSON) is removed and
 * `get` rejects with `CacheRecordError`, which `fromCache` reports as `record-rejected`.
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
  const { namespace, lock, hashTags = false } = options ?? {};
  checkNamespace("keyvCache", namespace);
  if (typeof hashTags !== "boolean") {
    throw new CacheConfigError(`keyvCache: "hashTags" must be true or false, got ${describeValue(hashTags)}`);
  }
  const nameOf = hashTags ? hashTagged : (key: string) => key;
  if (lock !== undefined && typeof (lock as { acquire?: unknown } | null)?.acquire !== "function") {
    throw new CacheConfigError(
      'keyvCache: "lock" must have an acquire(key, ttlMs) method, e.g. redisLock(client)',
    );
  }
  const prefix = namespace === undefined ? "" : `${namespace}:`;
  const canReadRaw = typeof keyv.deserializeData === "function";

  /** What Keyv is handed for `key`: its name (hash-tagged with `hashTags`), prefixed. */
  function storeKey(key: string): string {
    return keyvName(nameOf(key));
  }

  function keyvName(name: string): string {
    const keyvNamespace = keyv.namespace;
    // Keyv leaves a key that already starts with "<its namespace>:" unprefixed, so "x" and
    // "keyv:x" would share one entry. Adding the prefix here keeps every key distinct
    // and gives the usual keys the very names Keyv would have given them.
    return keyvNamespace && keyv.useKeyPrefix !== false
      ? `${keyvNamespace}:${prefix}${name}`
      : `${prefix}${name}`;
  }

  const store: CredentialCache = {
    async get(key: string): Promise<unknown | undefined> {
      assertCacheKey(key);
      const name = storeKey(key);
      // Without deserializeData this is not Keyv 5 and may not know { raw: true }: it
      // would hand back the value itself, which must not be taken for a broken entry.
      if (!canReadRaw) return keyv.get(name);
      let entry: unknown;
      try {
        // One store read, as keyv.get(name) would do; raw keeps the envelope, so
        // `{}`, `[]` or `-1` are not silently read as a miss (their `.value` is undefined).
        entry = await keyv.get(name, { raw: true });
      } catch (error) {
        if (await isUnparseable(name)) {
          throw await rejected(name, "unparseable", "it is not what Keyv's deserializer can read");
        }
        throw error;
      }
      // Missing, JSON null, or expired (which Keyv has just deleted).
      if (entry === undefined || entry === null) return undefined;
      if (!isEnvelope(entry)) {
        throw await rejected(name, "not-an-envelope", "it is not a Keyv entry ({ value, expires })");
      }
      return entry.value;
    },

    async set(key: string, value: unknown, ttlSeconds?: number): Promise<void> {
      assertCacheKey(key);
      expiresAtFromTtl(ttlSeconds, 0); // only to reject a negative or non-finite TTL the way every store does
      if (value === undefined || typeof value === "function" || typeof value === "symbol") {
        // Keyv would store `{}` for undefined: an entry without a value, which get rejects.
        throw new CacheArgumentError(`value for "${key}" must be JSON data, got ${typeof value}`);
      }
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

  /**
   * After `keyv.get` threw: true when the store itself answered and only decoding its
   * answer failed (a second read, on this error path only). A store error stays a store error.
   */
  async function isUnparseable(name: string): Promise<boolean> {
    let stored: unknown;
    try {
      const adapter = keyv.store as { get?(key: string): unknown } | undefined;
      if (typeof adapter?.get !== "function") return false;
      stored = await adapter.get(name);
    } catch {
      return false;
    }
    if (stored === undefined || stored === null) return false;
    try {
      await keyv.deserializeData?.(stored);
      return false;
    } catch {
      return true;
    }
  }

  /**
   * Removes a stored value that is no record and returns the error `get` rejects with.
   * The message names the key and the reason, never the value: it may hold a secret.
   */
  async function rejected(name: string, reason: string, why: string): Promise<CacheRecordError> {
    try {
      await keyv.delete(name);
    } catch {
      // fromCache removes it again on record-rejected; the broken value is the news here.
    }
    return new CacheRecordError(reason, `@credcache/keyv removed the value under "${name}": ${why}`);
  }

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
    // What get() would reject is not listed either.
    if (!isEnvelope(data)) return false;
    // Keyv's own get() takes an entry for expired once `expires < Date.now()`.
    return typeof data.expires !== "number" || data.expires >= Date.now();
  }

  // Only when Keyv itself can iterate its store; then `keys` reads the adapter's listing
  // directly. Keyv's iterator() would do for most stores, but it deletes the expired
  // entries it meets while listing, which makes @keyv/sqlite's LIMIT/OFFSET pages skip live
  // ones, it throws on a value that is gone or not JSON, and it strips the first
  // ":"-separated part of every key whatever the namespace.
  if (typeof keyv.iterator === "function") {
    store.keys = async (): Promise<string[]> => {
      // Every key of this store is stored as `<head><key>`, exactly the key Keyv hands its adapter.
      const head = keyvName("");
      const found = new Set<string>(); // SCAN may return a key more than once
      for await (const entry of storedEntries(keyv)) {
        if (!Array.isArray(entry)) continue;
        const [raw, stored] = entry as [unknown, unknown];
        if (typeof raw !== "string" || !raw.startsWith(head) || raw.startsWith(LOCK_KEY_PREFIX)) continue;
        // With hashTags, a name without one was written before them: never read, so not listed.
        const key = hashTags ? untagged(raw.slice(head.length)) : raw.slice(head.length);
        if (key === undefined || key === "" || key.length > MAX_KEY_LENGTH || found.has(key)) continue;
        if (await isLiveEntry(stored)) found.add(key);
      }
      return [...found];
    };
  }

  if (lock) {
    store.acquireLock = async (key: string, opts: { ttlMs: number }): Promise<CacheLock | undefined> => {
      assertCacheKey(key);
      assertLockTtl(opts?.ttlMs);
      return lock.acquire(`${prefix}${nameOf(key)}`, opts.ttlMs);
    };
  }
  return store;
}
