import { randomUUID } from "node:crypto";
import { CacheArgumentError } from "./errors.js";

/** Longest key a store must accept. Longer keys are almost certainly a bug. */
export const MAX_KEY_LENGTH = 4096;

/**
 * For adapter authors: rejects keys no store should accept. Every adapter calls
 * this first, so all stores fail the same way on the same bad input.
 */
export function assertCacheKey(key: unknown): asserts key is string {
  if (typeof key !== "string" || key.length === 0) {
    throw new CacheArgumentError(
      `cache key must be a non-empty string, got ${typeof key === "string" ? '""' : typeof key}`,
    );
  }
  if (key.length > MAX_KEY_LENGTH) {
    throw new CacheArgumentError(`cache key is ${key.length} characters; the limit is ${MAX_KEY_LENGTH}`);
  }
}

/**
 * For adapter authors: the PHP `CacheInterface` TTL rule in one place. Returns the
 * expiry as epoch ms, or `undefined` for "never" (TTL 0 or `undefined`).
 */
export function expiresAtFromTtl(ttlSeconds: number | undefined, now: number): number | undefined {
  if (ttlSeconds === undefined || ttlSeconds === 0) return undefined;
  if (typeof ttlSeconds !== "number" || !Number.isFinite(ttlSeconds) || ttlSeconds < 0) {
    throw new CacheArgumentError(
      `ttlSeconds must be a non-negative number of seconds (0 = no expiry), got ${ttlSeconds}`,
    );
  }
  return now + ttlSeconds * 1000;
}

/** For adapter authors: a lock token unique to this holder. */
export function newLockToken(): string {
  return `${process.pid}:${randomUUID()}`;
}

/** For adapter authors: validates `acquireLock`'s `ttlMs`. */
export function assertLockTtl(ttlMs: unknown): asserts ttlMs is number {
  if (typeof ttlMs !== "number" || !Number.isFinite(ttlMs) || ttlMs <= 0) {
    throw new CacheArgumentError(
      `lock ttlMs must be a positive number of milliseconds, got ${String(ttlMs)}`,
    );
  }
}
