import { REFRESH_DEFAULTS } from "./defaults.js";
import type { CacheRecord, RefreshWindow } from "./types.js";

/**
 * The refresh window of a stored record at `now`, with the default (or given) windows.
 * `fromCache` itself adds per-process jitter inside the advisory window.
 */
export function windowOfRecord(
  record: Pick<CacheRecord, "expiration">,
  now: number,
  windows: { advisoryRefreshMs?: number; mandatoryRefreshMs?: number } = {},
): RefreshWindow {
  if (record.expiration === undefined) return "fresh";
  const left = record.expiration - now;
  if (left <= 0) return "expired";
  if (left <= (windows.mandatoryRefreshMs ?? REFRESH_DEFAULTS.mandatoryRefreshMs)) return "mandatory";
  if (left <= (windows.advisoryRefreshMs ?? REFRESH_DEFAULTS.advisoryRefreshMs)) return "advisory";
  return "fresh";
}
