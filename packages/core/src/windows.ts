import { REFRESH_DEFAULTS } from "./defaults.js";
import { longTermExpiresAt, type RefreshPolicy, timelineOf, windowAt } from "./policy.js";
import type { CacheRecord, RefreshWindow } from "./types.js";

/**
 * The windows a tool judges a stored record by: `fromCache`'s options of the same names.
 * `credcache inspect` passes `PROCESS_DEFAULTS` for the CLI's store.
 */
export interface RecordWindows {
  /** @default REFRESH_DEFAULTS.advisoryRefreshMs */
  advisoryRefreshMs?: number;
  /** @default REFRESH_DEFAULTS.mandatoryRefreshMs */
  mandatoryRefreshMs?: number;
  /** @default REFRESH_DEFAULTS.noExpirationTtlMs */
  noExpirationTtlMs?: number;
}

/** The policy for judging a record from outside a process: no per-process jitter, no floor. */
function policyOf(windows: RecordWindows): RefreshPolicy {
  const advisoryMs = windows.advisoryRefreshMs ?? REFRESH_DEFAULTS.advisoryRefreshMs;
  return {
    advisoryMs,
    // Each process refreshes at its own point in the advisory window; a tool shows where it opens.
    advisoryPointMs: advisoryMs,
    mandatoryMs: windows.mandatoryRefreshMs ?? REFRESH_DEFAULTS.mandatoryRefreshMs,
    minValidityMs: 0,
    retryBaseMs: REFRESH_DEFAULTS.retryBaseMs,
    retryMaxMs: REFRESH_DEFAULTS.retryMaxMs,
    noExpirationTtlMs: windows.noExpirationTtlMs ?? REFRESH_DEFAULTS.noExpirationTtlMs,
  };
}

type StoredTimes = Pick<CacheRecord, "expiration"> & Partial<Pick<CacheRecord, "cachedAt">>;

/**
 * The refresh window of a stored record at `now`, as `fromCache` sees it (the policy's
 * `timelineOf`): credentials without an expiration are fresh for `noExpirationTtlMs` after
 * they were cached, then expired.
 *
 * @example
 * ```ts
 * windowOfRecord(record, Date.now()); // the library's windows
 * windowOfRecord(record, Date.now(), PROCESS_DEFAULTS); // the windows of `credcache process`
 * ```
 */
export function windowOfRecord(record: StoredTimes, now: number, windows: RecordWindows = {}): RefreshWindow {
  // A record without either time (an old tool's view) has nothing to judge by: fresh.
  if (record.expiration === undefined && record.cachedAt === undefined) return "fresh";
  return windowAt(
    timelineOf({ v: 1, accessKeyId: "", secretAccessKey: "", cachedAt: 0, ...record }, policyOf(windows)),
    now,
  );
}

/** When a stored record stops being served: its expiration, or `noExpirationTtlMs` after it was cached (long-term keys). */
export function expiresAtOfRecord(record: StoredTimes, windows: RecordWindows = {}): number | undefined {
  if (record.expiration !== undefined) return record.expiration;
  if (record.cachedAt === undefined) return undefined;
  return longTermExpiresAt({ cachedAt: record.cachedAt }, policyOf(windows));
}
