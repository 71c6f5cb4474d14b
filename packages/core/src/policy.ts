import type { CacheRecord, RefreshWindow } from "./types.js";

/**
 * The refresh rules, without I/O: what a record's timeline is, which window it is in,
 * when the next attempt may start, and what a caller should do. `fromCache` asks
 * {@link decide} and does what it says; unit tests drive these with a number for "now".
 */

/** The windows and backoff one provider uses (all in ms). */
export interface RefreshPolicy {
  advisoryMs: number;
  mandatoryMs: number;
  /** This process's own refresh point in (mandatory, advisory]: spreads a fleet out. */
  advisoryPointMs: number;
  minValidityMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  noExpirationTtlMs: number;
}

/** The points in time at which a held set changes state. */
export interface Timeline {
  /** Until then: fresh, nothing to do. */
  freshUntil: number;
  /** From then: every caller may start a refresh (the mandatory window). */
  mandatoryAt: number;
  /** From then the set is below the caller's hard floor: callers wait for a refresh. */
  floorAt: number;
  /** From then: expired (or, for an extended set, the extension is over). */
  expiresAt: number;
  /**
   * No fetch before then: the source had nothing newer when this set was fetched, or,
   * for an extended set, the SDK's static stability says when to try again.
   */
  recheckAt: number;
  /** Served past its real expiry by static stability: never stored, never fresh. */
  extended: boolean;
}

/** The refresh state every process sees through the store (see `refreshState.ts`). */
export interface SharedView {
  /** A live attempt by some process runs until then (0: none). */
  attemptUntil: number;
  /** No new attempt before then: the shared backoff (0: none). */
  nextAttemptAt: number;
  /** Consecutive failed attempts. */
  failures: number;
}

export const NO_SHARED_STATE: SharedView = Object.freeze({ attemptUntil: 0, nextAttemptAt: 0, failures: 0 });

/**
 * When a set was fetched inside the refresh windows, the source had nothing newer then
 * (EC2 makes the next set available as late as 5 min before expiry). Asking again at once
 * would return the same set, so the next fetch waits a quarter of the time that was left
 * (at least `retryBaseMs`, at most half of it). Computed from the stored record alone, so
 * every process agrees on it and a fleet asks once per interval, not once per process.
 */
export function recheckAt(
  record: Pick<CacheRecord, "expiration" | "cachedAt">,
  policy: RefreshPolicy,
): number {
  if (record.expiration === undefined) return 0;
  const leftAtFetch = record.expiration - record.cachedAt;
  if (leftAtFetch > policy.advisoryMs) return 0;
  return record.cachedAt + Math.min(Math.max(policy.retryBaseMs, leftAtFetch / 4), leftAtFetch / 2);
}

/** The timeline of a record; `extendedUntil` marks a set kept past expiry by static stability. */
export function timelineOf(record: CacheRecord, policy: RefreshPolicy, extendedUntil?: number): Timeline {
  if (extendedUntil !== undefined) {
    return {
      freshUntil: 0,
      mandatoryAt: 0,
      floorAt: extendedUntil,
      expiresAt: extendedUntil,
      recheckAt: extendedUntil,
      extended: true,
    };
  }
  // Credentials without an expiration are kept for a bounded time, so a rotated static
  // key reaches every client.
  const expiresAt = record.expiration ?? record.cachedAt + policy.noExpirationTtlMs;
  if (record.expiration === undefined) {
    return {
      freshUntil: expiresAt,
      mandatoryAt: expiresAt,
      floorAt: expiresAt,
      expiresAt,
      recheckAt: 0,
      extended: false,
    };
  }
  return {
    freshUntil: expiresAt - policy.advisoryPointMs,
    mandatoryAt: expiresAt - policy.mandatoryMs,
    floorAt: expiresAt - policy.minValidityMs,
    expiresAt,
    recheckAt: recheckAt(record, policy),
    extended: false,
  };
}

/** Which window a held set is in at `now`. */
export function windowAt(t: Timeline, now: number): RefreshWindow {
  if (now >= t.expiresAt) return "expired";
  if (now >= t.mandatoryAt) return "mandatory";
  if (now >= t.freshUntil) return "advisory";
  return "fresh";
}

/** Backoff after the `failures`-th consecutive failure: doubling, capped, jittered to 50–100%. */
export function backoffMs(failures: number, policy: RefreshPolicy, random: () => number): number {
  const step = Math.min(policy.retryMaxMs, policy.retryBaseMs * 2 ** Math.max(0, failures - 1));
  return step * (0.5 + random() * 0.5);
}

/**
 * What a caller does:
 * - `serve`: hand out the set in hand, nothing else;
 * - `serve-and-refresh`: hand it out now and start one attempt behind (try-lock only);
 * - `wait`: no usable set, and some process's attempt is live: wait for its outcome;
 * - `refresh`: no usable set: take the lock and fetch (or wait for whoever has it);
 * - `fail`: no usable set, and the shared backoff allows no attempt within `patienceMs`.
 */
export type Decision = "serve" | "serve-and-refresh" | "wait" | "refresh" | "fail";

/**
 * The whole refresh rule. Nobody waits while a valid set above its floor exists; only a
 * caller without one waits, and only while something can still happen within its patience.
 */
export function decide(
  now: number,
  held: Timeline | undefined,
  shared: SharedView,
  patienceMs: number,
): Decision {
  if (held && now < held.floorAt && now < held.expiresAt) {
    if (now < held.freshUntil) return "serve";
    if (now < held.recheckAt || now < shared.nextAttemptAt || now < shared.attemptUntil) return "serve";
    return "serve-and-refresh";
  }
  if (now < shared.attemptUntil) return "wait";
  if (shared.nextAttemptAt > now + patienceMs) return "fail";
  return "refresh";
}

/**
 * The fencing rule: `stored` must not be replaced by `incoming` when it expires later, or
 * is the same set cached later. A paused holder that resumes never overwrites a newer set.
 */
export function supersedes(
  stored: Pick<CacheRecord, "accessKeyId" | "expiration" | "cachedAt">,
  incoming: Pick<CacheRecord, "accessKeyId" | "expiration" | "cachedAt">,
): boolean {
  const a = stored.expiration ?? Number.POSITIVE_INFINITY;
  const b = incoming.expiration ?? Number.POSITIVE_INFINITY;
  if (a !== b) return a > b;
  return stored.accessKeyId === incoming.accessKeyId && stored.cachedAt > incoming.cachedAt;
}
