const MINUTE = 60_000;

/**
 * The refresh defaults of {@link fromCache}, in one place. The CLI, the battery, the
 * benchmarks and the docs read them from here; nothing else states them.
 *
 * @example
 * ```ts
 * import { REFRESH_DEFAULTS } from "@credcache/core";
 * REFRESH_DEFAULTS.advisoryRefreshMs; // 900_000
 * ```
 */
export const REFRESH_DEFAULTS = Object.freeze({
  /** Each process starts a refresh behind at its own point between this and `mandatoryRefreshMs` left. */
  advisoryRefreshMs: 15 * MINUTE,
  /** The latest point at which a refresh starts; above the JS SDK client's own 5 min window. */
  mandatoryRefreshMs: 10 * MINUTE,
  /** Below this much time left a caller waits for a refresh, as if the set had expired. */
  minValidityMs: 0,
  /** How long one refresh attempt may hold the shared lock, and how long it shows as in progress. */
  lockTtlMs: 10_000,
  /**
   * How long a caller without a valid set waits for a refresh by anyone: one lease plus
   * 2 s. With a `lockTtlMs` of its own, a caller waits that plus 2 s ({@link lockWaitMsFor}).
   */
  lockWaitMs: 12_000,
  /** Poll interval of a caller waiting for another process's attempt (jittered ±50%). */
  lockPollMs: 50,
  /** Longest time any single store call may take before it counts as failed. */
  cacheTimeoutMs: 1_000,
  /** First backoff step after a failed attempt; doubles per failure up to `retryMaxMs`. */
  retryBaseMs: 5_000,
  /** Largest backoff step. */
  retryMaxMs: 60_000,
  /** Extra tries the lock holder makes within its lease on a cold start (no set in hand at all). */
  holderRetries: 1,
  /** How long credentials without an expiration are kept (L1 and store) before they are fetched again. */
  noExpirationTtlMs: 15 * MINUTE,
  /** How long a record stays in the store past its expiry, for static stability in new processes. */
  keepExpiredMs: 60 * MINUTE,
});

/** The default `lockWaitMs` for a given `lockTtlMs`: one lease plus 2 s. */
export function lockWaitMsFor(lockTtlMs: number): number {
  return lockTtlMs + (REFRESH_DEFAULTS.lockWaitMs - REFRESH_DEFAULTS.lockTtlMs);
}

/**
 * Fixed parts of the refresh model, not options: named here so that no number is
 * restated in the code that uses it.
 */
export const REFRESH_CONSTANTS = Object.freeze({
  /** Static stability extends an expired set by at least this much... */
  extendMinMs: 5 * MINUTE,
  /** ...plus up to this much, jittered (the SDK's 5–10 min). */
  extendJitterMs: 5 * MINUTE,
  /** Longest pause between the lock holder's tries (and at most a tenth of its lease). */
  holderPauseMaxMs: 1_000,
  /** Longest single sleep while waiting out a backoff, so a waiter notices a peer's write. */
  waitPollMaxMs: 250,
  /**
   * Shared state further ahead than one lease (attempt mark), or than `retryMaxMs`
   * (backoff), by more than this is malformed (planted, or a clock far off) and ignored.
   * Covers the clock skew between hosts sharing a store.
   */
  sharedStateSlackMs: 5_000,
  /** setTimeout's longest delay; beyond it the proactive refresh timer is not set. */
  maxTimerMs: 2 ** 31 - 1,
});

/**
 * When SDK clients call their credential provider again, measured as time left before
 * expiry. credcache's windows sit above these so that a client asks once per rotation.
 */
export const SDK_REFRESH_WINDOWS = Object.freeze({
  /** AWS SDK for JavaScript v3 client (`memoize` with a 5 min expiry window). */
  javascriptV3Ms: 5 * MINUTE,
  /** botocore / boto3 / AWS CLI: advisory refresh on every access below this. */
  botocoreAdvisoryMs: 15 * MINUTE,
  /** botocore: mandatory (blocking) refresh below this. */
  botocoreMandatoryMs: 10 * MINUTE,
});

/**
 * The windows `credcache process` uses. botocore runs `credential_process` on every
 * credential access once fewer than 15 min are left, so the cache refreshes (behind)
 * from 25 min left, which hands botocore a set with more than 15 min whenever the source
 * has one; and refuses to hand out a set with less than 6 min (the JS SDK's 5 min plus a
 * minute of slack), waiting for a refresh instead.
 */
export const PROCESS_DEFAULTS = Object.freeze({
  advisoryRefreshMs: 25 * MINUTE,
  mandatoryRefreshMs: 20 * MINUTE,
  minValidityMs: 6 * MINUTE,
  /** A one-shot process waits longer for a store call than a long-running one would. */
  cacheTimeoutMs: 3_000,
});

/** The PHP SDK's default cache key. */
export const DEFAULT_CACHE_KEY = "aws_cached_credentials";
