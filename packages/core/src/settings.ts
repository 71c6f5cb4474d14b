import type { AwsCredentialIdentityProvider, Logger } from "@smithy/types";
import { DEFAULT_CACHE_KEY, lockWaitMsFor, REFRESH_DEFAULTS, SDK_REFRESH_WINDOWS } from "./defaults.js";
import { CacheConfigError } from "./errors.js";
import type { Patience, RefreshPolicy } from "./policy.js";
import type { CacheEvent, Clock, CredentialCache } from "./types.js";

/**
 * Options of {@link fromCache}. Every default is in {@link REFRESH_DEFAULTS}, under the
 * option's own name; the tags below name them for readers of this file.
 */
export interface FromCacheInit {
  /** Where credentials come from on a miss: any SDK v3 credential provider. */
  provider: AwsCredentialIdentityProvider;
  /** The shared (L2) store. Without one, `fromCache` is an in-process memo with refresh windows. */
  cache?: CredentialCache;
  /**
   * The store key. Two principals must never share one: the presets build keys from
   * everything that changes the credentials.
   * @default "aws_cached_credentials" (the PHP SDK's key)
   */
  key?: string;
  /** A label stored with the record (`imds`, `sts`, ...), shown by `credcache inspect`. */
  source?: string;
  /**
   * Start refreshing behind when this much time is left before expiry. Each process picks
   * its own point between this and `mandatoryRefreshMs`, so a fleet does not try at the
   * same second. Callers keep being served the valid set meanwhile.
   * @default REFRESH_DEFAULTS.advisoryRefreshMs
   */
  advisoryRefreshMs?: number;
  /**
   * The latest point at which every caller starts a refresh behind. Keep it above the SDK
   * client's own 5 min window, or the client calls back on every request near expiry.
   * @default REFRESH_DEFAULTS.mandatoryRefreshMs
   */
  mandatoryRefreshMs?: number;
  /**
   * The caller's hard floor: a set with less than this left is treated as expired, and
   * the caller waits for a refresh (the CLI uses `PROCESS_DEFAULTS.minValidityMs`).
   * @default REFRESH_DEFAULTS.minValidityMs
   */
  minValidityMs?: number;
  /**
   * When the source fails and the credentials in hand have expired, serve them for
   * another 5–10 min with a warning and try again after that (the SDK's static
   * stability). Such a set is never written to the store as fresh. Off by default; on in
   * the instance-metadata preset.
   * @default false
   */
  staleIfError?: boolean;
  /**
   * How long one refresh attempt holds the cross-process lock and shows as in progress.
   * A holder that dies is taken over after this, or at once when it ran on this machine.
   * @default REFRESH_DEFAULTS.lockTtlMs
   */
  lockTtlMs?: number;
  /**
   * How long a caller without a valid set waits for a refresh by anyone (re-reading the
   * store meanwhile) before it fails or, when no live attempt is visible, fetches itself.
   * See `patienceLeft` in the policy.
   * @default lockTtlMs + 2_000
   */
  lockWaitMs?: number;
  /**
   * Poll interval while waiting for another process's attempt (jittered ±50%).
   * @default REFRESH_DEFAULTS.lockPollMs
   */
  lockPollMs?: number;
  /**
   * Longest time any single store call may take before it counts as failed.
   * @default REFRESH_DEFAULTS.cacheTimeoutMs
   */
  cacheTimeoutMs?: number;
  /**
   * First backoff step after a failed attempt; doubles per consecutive failure up to
   * `retryMaxMs`, with jitter (50–100% of the step). The backoff is shared through the
   * store: one schedule per key per store, whatever the number of processes.
   * @default REFRESH_DEFAULTS.retryBaseMs
   */
  retryBaseMs?: number;
  /** @default REFRESH_DEFAULTS.retryMaxMs */
  retryMaxMs?: number;
  /**
   * Extra tries the lock holder makes within its lease, with jitter, on a cold start (no
   * set in hand at all: a herd on a starved host). Every other attempt tries once, so an
   * outage sees one try per step of the shared backoff.
   * @default REFRESH_DEFAULTS.holderRetries
   */
  holderRetries?: number;
  /**
   * How long credentials without an expiration (long-term keys) are kept before they are
   * fetched again, so a rotated key reaches every client.
   * @default REFRESH_DEFAULTS.noExpirationTtlMs
   */
  noExpirationTtlMs?: number;
  /**
   * Write credentials without an expiration to a store whose `scope` is not `"process"`
   * or `"host"` (Redis, a custom store). Off: long-term keys do not travel off the host.
   * @default false
   */
  shareLongTermCredentials?: boolean;
  /**
   * Refresh behind on a timer at this process's advisory point, so a long-running process
   * never waits for a fetch. Timers are `unref`'d.
   * @default true
   */
  proactiveRefresh?: boolean;
  /** Injectable clock (epoch ms); it measures every duration. @default Date */
  clock?: Clock;
  /** Injectable random source in [0, 1), for jitter. @default Math.random */
  random?: () => number;
  /** An SDK-compatible logger. Lines are prefixed `@credcache/core - fromCache`. */
  logger?: Logger;
  /** Called with every {@link CacheEvent}. Exceptions it throws are ignored. */
  onEvent?: (event: CacheEvent) => void;
}

/** Settings after defaults and validation. */
export interface Settings {
  key: string;
  policy: RefreshPolicy;
  patience: Patience;
  lockTtlMs: number;
  lockPollMs: number;
  holderRetries: number;
  cacheTimeoutMs: number;
  staleIfError: boolean;
  proactive: boolean;
  shareLongTerm: boolean;
}

function checkMs(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw new CacheConfigError(
      `fromCache: ${name} must be a non-negative number of milliseconds, got ${value}`,
    );
  }
  return value;
}

/** The options with their defaults, checked; a bad one is a {@link CacheConfigError} that says what to fix. */
export function settle(init: FromCacheInit, random: () => number): Settings {
  if (typeof init?.provider !== "function") {
    throw new CacheConfigError("fromCache: `provider` must be a credential provider function");
  }
  const key = init.key ?? DEFAULT_CACHE_KEY;
  if (typeof key !== "string" || key.length === 0) {
    throw new CacheConfigError("fromCache: `key` must be a non-empty string");
  }
  const d = REFRESH_DEFAULTS;
  const advisoryMs = checkMs("advisoryRefreshMs", init.advisoryRefreshMs, d.advisoryRefreshMs);
  const mandatoryMs = checkMs("mandatoryRefreshMs", init.mandatoryRefreshMs, d.mandatoryRefreshMs);
  if (mandatoryMs > advisoryMs) {
    throw new CacheConfigError(
      `fromCache: mandatoryRefreshMs (${mandatoryMs}) must not exceed advisoryRefreshMs (${advisoryMs})`,
    );
  }
  const lockTtlMs = checkMs("lockTtlMs", init.lockTtlMs, d.lockTtlMs);
  return {
    key,
    policy: {
      advisoryMs,
      mandatoryMs,
      // (1 - random) is in (0, 1], so the point lies in (mandatory, advisory].
      advisoryPointMs: mandatoryMs + (1 - random()) * (advisoryMs - mandatoryMs),
      minValidityMs: checkMs("minValidityMs", init.minValidityMs, d.minValidityMs),
      retryBaseMs: checkMs("retryBaseMs", init.retryBaseMs, d.retryBaseMs),
      retryMaxMs: checkMs("retryMaxMs", init.retryMaxMs, d.retryMaxMs),
      noExpirationTtlMs: checkMs("noExpirationTtlMs", init.noExpirationTtlMs, d.noExpirationTtlMs),
    },
    patience: { lockTtlMs, lockWaitMs: checkMs("lockWaitMs", init.lockWaitMs, lockWaitMsFor(lockTtlMs)) },
    lockTtlMs,
    lockPollMs: Math.max(1, checkMs("lockPollMs", init.lockPollMs, d.lockPollMs)),
    holderRetries: Math.floor(checkMs("holderRetries", init.holderRetries, d.holderRetries)),
    cacheTimeoutMs: checkMs("cacheTimeoutMs", init.cacheTimeoutMs, d.cacheTimeoutMs),
    staleIfError: init.staleIfError ?? false,
    proactive: init.proactiveRefresh ?? true,
    shareLongTerm: init.shareLongTermCredentials === true,
  };
}

/** Settings that work but are probably a mistake: each a warning to log once, at construction. */
export function settingsWarnings(init: FromCacheInit, s: Settings): string[] {
  const warnings: string[] = [];
  if (init.key === undefined && init.cache && init.cache.scope !== "process") {
    warnings.push(
      `no key given: using "${DEFAULT_CACHE_KEY}" on a store other processes read; ` +
        "two providers with different credentials would share it. Pass a key, or use a preset",
    );
  }
  const { mandatoryMs } = s.policy;
  if (mandatoryMs <= SDK_REFRESH_WINDOWS.javascriptV3Ms && mandatoryMs !== 0) {
    warnings.push(
      `mandatoryRefreshMs (${mandatoryMs}) is not above the SDK client's 5 min window; ` +
        "the client may call the provider on every request near expiry",
    );
  }
  return warnings;
}
