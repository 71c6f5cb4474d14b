import {
  assertCacheKey,
  assertLockTtl,
  type CacheLock,
  type Clock,
  type CredentialCache,
  expiresAtFromTtl,
  newLockToken,
} from "@credcache/core";

/**
 * The smallest store that passes the suite: a Map of JSON strings with TTLs on the
 * injected clock, and a lease lock. The suite's own tests run against it; adapter
 * authors can read it as a worked example of the contract.
 */
export function referenceStore(options: { clock?: Clock } = {}): CredentialCache {
  const clock = options.clock ?? Date;
  const entries = new Map<string, { json: string; expiresAt: number | undefined }>();
  const locks = new Map<string, { token: string; expiresAt: number }>();

  return {
    async get(key) {
      assertCacheKey(key);
      const entry = entries.get(key);
      if (!entry) return undefined;
      if (entry.expiresAt !== undefined && entry.expiresAt <= clock.now()) {
        entries.delete(key);
        return undefined;
      }
      // JSON in and out: the caller gets a copy, and `__proto__` stays an own key.
      return JSON.parse(entry.json) as unknown;
    },
    async set(key, value, ttlSeconds) {
      assertCacheKey(key);
      const expiresAt = expiresAtFromTtl(ttlSeconds, clock.now());
      entries.set(key, { json: JSON.stringify(value), expiresAt });
    },
    async remove(key) {
      assertCacheKey(key);
      entries.delete(key);
    },
    async keys() {
      const now = clock.now();
      return [...entries].flatMap(([key, entry]) =>
        entry.expiresAt === undefined || entry.expiresAt > now ? [key] : [],
      );
    },
    async acquireLock(key, { ttlMs }): Promise<CacheLock | undefined> {
      assertCacheKey(key);
      assertLockTtl(ttlMs);
      const now = clock.now();
      const current = locks.get(key);
      if (current && current.expiresAt > now) return undefined;
      const token = newLockToken();
      locks.set(key, { token, expiresAt: now + ttlMs });
      return {
        takenOver: current !== undefined,
        async release() {
          if (locks.get(key)?.token === token) locks.delete(key);
        },
      };
    },
    async close() {
      entries.clear();
      locks.clear();
    },
  };
}
