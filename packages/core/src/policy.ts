import { REFRESH_CONSTANTS, REFRESH_DEFAULTS } from "./defaults.js";
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

/**
 * How long credentials without an expiration (long-term keys) are kept: `noExpirationTtlMs`
 * after they were fetched, in L1 and in the store alike, so a rotated key reaches every client.
 */
export function longTermExpiresAt(
  record: Pick<CacheRecord, "cachedAt">,
  policy: Pick<RefreshPolicy, "noExpirationTtlMs">,
): number {
  return record.cachedAt + policy.noExpirationTtlMs;
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
  const expiresAt = record.expiration ?? longTermExpiresAt(record, policy);
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

// ---- the rules around an attempt: each a pure function of a number for "now" ----

/** A set and its timeline, as the rules below see it. */
export interface TimedSet {
  record: Pick<CacheRecord, "accessKeyId" | "expiration" | "cachedAt">;
  t: Timeline;
}

/**
 * Adoption: a stored set spares this caller a fetch when it is valid above the floor and
 * either fresh (a refresh behind) or before the mandatory window (a caller that must
 * wait), or fetched so recently that the source has nothing newer. It never replaces a
 * set in hand that is valid and expires later.
 */
export function adopts(
  now: number,
  stored: TimedSet,
  held: TimedSet | undefined,
  blocking: boolean,
): boolean {
  const t = stored.t;
  if (now >= t.floorAt || now >= t.expiresAt) return false;
  const spares = (blocking ? now < t.mandatoryAt : now < t.freshUntil) || now < t.recheckAt;
  if (!spares) return false;
  return !(held && !held.t.extended && now < held.t.expiresAt && supersedes(held.record, stored.record));
}

/**
 * How many tries the lock holder makes in one attempt: extra ones only on a cold start,
 * when this process has never had a set (a herd on a starved host); an outage after
 * expiry keeps to one try per step of the shared backoff.
 */
export function holderTries(coldStart: boolean, holderRetries: number): number {
  return coldStart ? 1 + Math.floor(holderRetries) : 1;
}

/** The pause before the holder's next try: a tenth of the lease, at most 1 s, jittered to 50–100%. */
export function holderPauseMs(lockTtlMs: number, random: () => number): number {
  return Math.min(REFRESH_CONSTANTS.holderPauseMaxMs, lockTtlMs / 10) * (0.5 + random() * 0.5);
}

/**
 * Whether the holder tries again: only if another try, as long as the last one took,
 * ends inside its lease. Past the lease another process may already be trying.
 */
export function holderMayTryAgain(
  now: number,
  lastTryMs: number,
  pauseMs: number,
  attemptStartedAt: number,
  lockTtlMs: number,
): boolean {
  return now + lastTryMs + pauseMs < attemptStartedAt + lockTtlMs;
}

/** The store TTL (s) of a written record: 1 h past expiry (static stability), or `noExpirationTtlMs` for long-term keys. */
export function recordTtlSeconds(
  record: Pick<CacheRecord, "expiration" | "cachedAt">,
  now: number,
  policy: Pick<RefreshPolicy, "noExpirationTtlMs">,
): number {
  const until =
    record.expiration === undefined
      ? longTermExpiresAt(record, policy)
      : record.expiration + REFRESH_DEFAULTS.keepExpiredMs;
  return Math.max(1, Math.ceil((until - now) / 1000));
}

/** The store TTL (s) of the refresh state: it outlives the longest backoff and lease, then disappears. */
export function stateTtlSeconds(policy: Pick<RefreshPolicy, "retryMaxMs">, lockTtlMs: number): number {
  return Math.ceil((Math.max(policy.retryMaxMs, lockTtlMs) * 2 + 60_000) / 1000);
}

/**
 * Scope: credentials without an expiration (long-term keys) are written only to a store
 * that stays on this host (`scope` "process" or "host"), unless the caller shares them.
 */
export function mayStore(
  record: Pick<CacheRecord, "expiration">,
  scope: string | undefined,
  shareLongTerm: boolean,
): boolean {
  return record.expiration !== undefined || shareLongTerm || scope === "process" || scope === "host";
}

/**
 * Fencing: the stored set is kept instead of the fetched one when it supersedes it and is
 * still valid (an expired set, or long-term keys past their TTL, never fences).
 */
export function fencedBy(
  stored: CacheRecord | undefined,
  incoming: CacheRecord,
  now: number,
  policy: RefreshPolicy,
): stored is CacheRecord {
  return stored !== undefined && supersedes(stored, incoming) && now < timelineOf(stored, policy).expiresAt;
}

/**
 * The failure ladder, for a caller whose attempt failed: serve the set in hand while it
 * is valid; extend an expired one by 5–10 min with `staleIfError` (static stability);
 * else throw (`expired` names the set that expired, `source` passes the source's error).
 */
export type FailureStep =
  | { step: "serve" }
  | { step: "extend"; until: number }
  | { step: "throw"; expired: boolean };

export function afterFailure(
  now: number,
  held: Timeline | undefined,
  staleIfError: boolean,
  random: () => number,
): FailureStep {
  if (held && now < held.expiresAt) return { step: "serve" };
  if (held && staleIfError) {
    const { extendMinMs, extendJitterMs } = REFRESH_CONSTANTS;
    return { step: "extend", until: now + extendMinMs + Math.floor(random() * extendJitterMs) };
  }
  return { step: "throw", expired: held !== undefined };
}

/**
 * When the proactive timer fires: at this process's advisory point, not before the
 * source may have something newer, nor inside the shared backoff or a live attempt, nor
 * before `notBefore` (a local pause after a busy lock). Undefined: no timer (nothing held
 * that expires, already past expiry, or beyond setTimeout's range).
 */
export function timerAt(
  now: number,
  held: Timeline | undefined,
  shared: SharedView,
  notBefore: number,
): number | undefined {
  if (!held || !Number.isFinite(held.expiresAt)) return undefined;
  const at = Math.max(held.freshUntil, held.recheckAt, shared.nextAttemptAt, shared.attemptUntil, notBefore);
  if (at - now > REFRESH_CONSTANTS.maxTimerMs || at >= held.expiresAt) return undefined;
  return at;
}

/** After finding the lock busy behind a valid set: no new try from this process for half to one `retryBaseMs`. */
export function busyPauseUntil(
  now: number,
  policy: Pick<RefreshPolicy, "retryBaseMs">,
  random: () => number,
): number {
  return now + policy.retryBaseMs * (0.5 + random() * 0.5);
}

/**
 * What the source returned, judged at `now`:
 * - `fresh`: valid (or without an expiration): hold it and store it;
 * - `extended`: the SDK's static stability moved an expired set's expiration 5–10 min out
 *   (`originalExpiration` in the past, `expiration` ahead): served as extended until
 *   `until`, never stored;
 * - `expired`: it expired at `expiredAt` and nobody extended it: refused.
 */
export type FetchedSet =
  | { kind: "fresh" }
  | { kind: "extended"; expiredAt: number; until: number }
  | { kind: "expired"; expiredAt: number };

export function classifyFetched(now: number, expiration?: number, originalExpiration?: number): FetchedSet {
  if (
    expiration !== undefined &&
    originalExpiration !== undefined &&
    originalExpiration <= now &&
    expiration > now
  ) {
    return { kind: "extended", expiredAt: originalExpiration, until: expiration };
  }
  if (expiration !== undefined && !(expiration > now)) return { kind: "expired", expiredAt: expiration };
  return { kind: "fresh" };
}

/** What bounds a caller's wait (all in ms). */
export interface Patience {
  lockWaitMs: number;
  lockTtlMs: number;
}

/**
 * The one answer to "how long does this caller wait", as the time it has left after
 * waiting `waitedMs`:
 * - for a live attempt (some process holds the lease): one lease plus slack, or
 *   `lockWaitMs` if longer: a live attempt ends by its lease, however starved the host;
 * - for the next attempt after a shared backoff: `lockWaitMs`, but only a caller with no
 *   set at all waits; one whose set expired is answered at once (extended with
 *   `staleIfError`, or the shared error).
 * Nothing read from a store makes it longer.
 */
export function patienceLeft(p: Patience, waitedMs: number, holdsSet: boolean, liveAttempt: boolean): number {
  if (liveAttempt)
    return Math.max(p.lockWaitMs, p.lockTtlMs + REFRESH_CONSTANTS.sharedStateSlackMs) - waitedMs;
  if (holdsSet) return 0;
  return p.lockWaitMs - waitedMs;
}

/** The sleep between two looks at the store while waiting: the poll interval (jittered), or the backoff left, at most 250 ms. */
export function pollDelayMs(lockPollMs: number, untilNextMs: number, random: () => number): number {
  const poll = lockPollMs * (0.5 + random());
  return untilNextMs > 0 ? Math.min(Math.max(poll, untilNextMs), REFRESH_CONSTANTS.waitPollMaxMs) : poll;
}

/**
 * Shared state is advice, never a veto. An attempt mark further ahead than one lease, or
 * a backoff further ahead than `retryMaxMs` (each plus slack for clock skew), cannot have
 * been written by a process using these settings: it is malformed (planted, or a clock
 * far off) and the whole state is ignored. Returns the view to act on and why, if ignored.
 */
export function plausibleView(
  view: SharedView,
  now: number,
  lockTtlMs: number,
  policy: Pick<RefreshPolicy, "retryMaxMs">,
): { view: SharedView; ignored?: "attempt" | "backoff" } {
  const slack = REFRESH_CONSTANTS.sharedStateSlackMs;
  if (view.attemptUntil > now + lockTtlMs + slack) return { view: NO_SHARED_STATE, ignored: "attempt" };
  if (view.nextAttemptAt > now + policy.retryMaxMs + slack)
    return { view: NO_SHARED_STATE, ignored: "backoff" };
  return { view };
}

// ---- the rules of serving and waiting ----

/** Why a refresh behind a served set starts: the mandatory window, else the advisory one. */
export function refreshReasonAt(t: Timeline, now: number): "mandatory" | "advisory" {
  return windowAt(t, now) === "mandatory" ? "mandatory" : "advisory";
}

/** A set served in the mandatory window while refreshing it keeps failing is served stale: say so. */
export function servedStale(window: RefreshWindow, shared: SharedView): boolean {
  return window === "mandatory" && shared.failures > 0;
}

/** Until when a failed refresh leaves this process serving its set (undefined: it has no valid one). */
export function servingUntil(held: Timeline | undefined, now: number): number | undefined {
  return held && now < held.expiresAt ? held.expiresAt : undefined;
}

/**
 * A caller without a valid set, having looked at the shared state with `patienceMs` left:
 * - `give-up`: the shared backoff allows no attempt within its patience ({@link decide});
 * - `wait`: an attempt is live, or the backoff ends, and it still has patience: look again;
 * - `lock`: take the lock and attempt (or find it busy).
 */
export type WaiterStep = "give-up" | "wait" | "lock";

export function waiterStep(now: number, shared: SharedView, patienceMs: number): WaiterStep {
  if (decide(now, undefined, shared, Math.max(0, patienceMs)) === "fail") return "give-up";
  const expected = now < shared.attemptUntil || now < shared.nextAttemptAt;
  return expected && patienceMs > 0 ? "wait" : "lock";
}

/**
 * Whether a caller that found the lock busy keeps waiting for it ({@link patienceLeft}). A
 * recorded failure means the lock is between attempts (the holder is sharing its outcome,
 * or the next one is about to mark itself): waited for as a live attempt. Past that, a
 * lock with no attempt to wait for (a peer without shared state, a store that cannot keep
 * it, a planted lock) is ignored and the caller fetches, as the SDK alone would.
 */
export function waitsForBusyLock(
  p: Patience,
  waitedMs: number,
  liveAttempt: boolean,
  shared: Pick<SharedView, "failures">,
): boolean {
  const active = liveAttempt || shared.failures > 0;
  return patienceLeft(p, waitedMs, false, active) > 0;
}

/**
 * After a failed attempt, whether the failure ladder ({@link afterFailure}) answers this
 * caller now: with a set in hand (valid, or expired), or when the source did answer with
 * credentials that cannot be used (asking again soon gives the same). Otherwise the caller
 * may wait for the next shared attempt.
 */
export function failureAnswersNow(holdsSet: boolean, unusableAnswer: boolean): boolean {
  return holdsSet || unusableAnswer;
}

/**
 * Whether a lock holder whose own attempt failed waits for the next shared attempt like
 * every other caller, within its patience. Not when forced, nor without a store: then
 * nobody else will try, so it answers now.
 */
export function holderWaitsAfterFailure(forced: boolean, hasStore: boolean): boolean {
  return !forced && hasStore;
}

/**
 * Whether `invalidate()` removes the stored set: only if it is the one this process
 * dropped (or it dropped none), so a racing refresh by another process is not undone.
 */
export function invalidateRemoves(
  stored: Pick<CacheRecord, "accessKeyId"> | undefined,
  droppedAccessKeyId: string | undefined,
): boolean {
  return !(stored && droppedAccessKeyId !== undefined && stored.accessKeyId !== droppedAccessKeyId);
}
