import { describe, expect, it } from "vitest";
import {
  adopts,
  afterFailure,
  busyPauseUntil,
  type CacheRecord,
  classifyFetched,
  fencedBy,
  holderMayTryAgain,
  holderPauseMs,
  holderTries,
  lockWaitMsFor,
  mayStore,
  NO_SHARED_STATE,
  patienceLeft,
  plausibleView,
  pollDelayMs,
  REFRESH_DEFAULTS,
  type RefreshPolicy,
  recordTtlSeconds,
  stateTtlSeconds,
  timelineOf,
  timerAt,
} from "../src/index.js";

// Each rule of the refresh model, driven with a number for "now" (see policy.ts).

const MIN = 60_000;
const T0 = Date.UTC(2026, 10, 30, 12, 0, 0);
const policy: RefreshPolicy = {
  advisoryMs: 15 * MIN,
  mandatoryMs: 10 * MIN,
  advisoryPointMs: 12 * MIN,
  minValidityMs: 0,
  retryBaseMs: 5_000,
  retryMaxMs: 60_000,
  noExpirationTtlMs: 15 * MIN,
};
const record = (over: Partial<CacheRecord> = {}): CacheRecord => ({
  v: 1,
  accessKeyId: "ASIARULES",
  secretAccessKey: "s",
  expiration: T0 + 60 * MIN,
  cachedAt: T0,
  ...over,
});
const timed = (r: CacheRecord) => ({ record: r, t: timelineOf(r, policy) });
/** `now` as "time left before the record's expiry". */
const left = (ms: number) => T0 + 60 * MIN - ms;

describe("adoption of a stored set", () => {
  const stored = timed(record());
  it("a waiting caller adopts a set until the mandatory window; a refresh behind only a fresh one", () => {
    expect(adopts(left(11 * MIN), stored, undefined, true)).toBe(true);
    expect(adopts(left(10 * MIN), stored, undefined, true)).toBe(false);
    expect(adopts(left(11 * MIN), stored, undefined, false)).toBe(false);
    expect(adopts(left(12 * MIN + 1), stored, undefined, false)).toBe(true);
  });
  it("a set fetched inside the windows spares a fetch until its recheck point", () => {
    const late = timed(record({ cachedAt: left(8 * MIN) })); // fetched with 8 min left: recheck 2 min later
    expect(adopts(left(8 * MIN - 1), late, undefined, true)).toBe(true);
    expect(adopts(left(6 * MIN), late, undefined, true)).toBe(false);
  });
  it("never below the caller's floor, never expired, never over a set in hand that expires later", () => {
    const floor = { ...policy, minValidityMs: 20 * MIN };
    const r = record();
    expect(adopts(left(19 * MIN), { record: r, t: timelineOf(r, floor) }, undefined, true)).toBe(false);
    expect(adopts(left(0), stored, undefined, true)).toBe(false);
    const later = timed(record({ accessKeyId: "ASIALATER", expiration: T0 + 90 * MIN }));
    expect(adopts(left(30 * MIN), stored, later, true)).toBe(false);
  });
});

describe("the holder's tries", () => {
  it("extra tries only on a cold start", () => {
    expect(holderTries(true, REFRESH_DEFAULTS.holderRetries)).toBe(2);
    expect(holderTries(false, 5)).toBe(1);
  });
  it("pauses a tenth of the lease, at most 1 s, jittered to 50–100%", () => {
    expect(holderPauseMs(10_000, () => 0)).toBe(500);
    expect(holderPauseMs(10_000, () => 1)).toBe(1_000);
    expect(holderPauseMs(2_000, () => 1)).toBe(200);
  });
  it("tries again only if a try as long as the last one ends inside the lease", () => {
    expect(holderMayTryAgain(T0 + 3_000, 3_000, 1_000, T0, 10_000)).toBe(true);
    expect(holderMayTryAgain(T0 + 5_000, 5_000, 1_000, T0, 10_000)).toBe(false);
  });
});

describe("store TTLs and scope", () => {
  it("a record lives 1 h past expiry; long-term keys their noExpirationTtlMs", () => {
    expect(recordTtlSeconds(record(), T0, policy)).toBe(2 * 3600);
    expect(recordTtlSeconds(record({ expiration: undefined }), T0 + MIN, policy)).toBe(14 * 60);
    expect(recordTtlSeconds(record({ expiration: T0 - 2 * 3600_000 }), T0, policy)).toBe(1);
  });
  it("the refresh state outlives the longest backoff and lease", () => {
    expect(stateTtlSeconds(policy, 10_000)).toBe(180);
    expect(stateTtlSeconds(policy, 100_000)).toBe(260);
  });
  it("long-term keys stay on the host unless shared", () => {
    const keys = record({ expiration: undefined });
    expect(mayStore(keys, "host", false)).toBe(true);
    expect(mayStore(keys, "process", false)).toBe(true);
    expect(mayStore(keys, "shared", false)).toBe(false);
    expect(mayStore(keys, undefined, false)).toBe(false);
    expect(mayStore(keys, undefined, true)).toBe(true);
    expect(mayStore(record(), undefined, false)).toBe(true);
  });
});

describe("fencing", () => {
  it("a valid stored set that expires later fences the incoming one; an expired one never does", () => {
    const later = record({ accessKeyId: "ASIALATER", expiration: T0 + 90 * MIN });
    expect(fencedBy(later, record(), T0, policy)).toBe(true);
    expect(fencedBy(later, record(), T0 + 91 * MIN, policy)).toBe(false);
    expect(fencedBy(undefined, record(), T0, policy)).toBe(false);
    expect(fencedBy(record(), later, T0, policy)).toBe(false);
  });
});

describe("the failure ladder", () => {
  const t = timelineOf(record(), policy);
  it("serves a valid set, extends an expired one by 5–10 min with staleIfError, else throws", () => {
    expect(afterFailure(left(MIN), t, false, () => 0)).toEqual({ step: "serve" });
    expect(afterFailure(left(-1), t, true, () => 0)).toEqual({ step: "extend", until: left(-1) + 5 * MIN });
    expect(afterFailure(left(-1), t, true, () => 0.999_999)).toMatchObject({ step: "extend" });
    const extendTo = afterFailure(left(-1), t, true, () => 0.999_999) as { until: number };
    expect(extendTo.until - left(-1)).toBeLessThan(10 * MIN);
    expect(afterFailure(left(-1), t, false, () => 0)).toEqual({ step: "throw", expired: true });
    expect(afterFailure(T0, undefined, true, () => 0)).toEqual({ step: "throw", expired: false });
  });
});

describe("the proactive timer", () => {
  const t = timelineOf(record(), policy);
  it("fires at the advisory point, after a backoff, a live attempt or a local pause", () => {
    expect(timerAt(T0, t, NO_SHARED_STATE, 0)).toBe(left(12 * MIN));
    const shared = { attemptUntil: 0, nextAttemptAt: left(11 * MIN), failures: 1 };
    expect(timerAt(T0, t, shared, 0)).toBe(left(11 * MIN));
    expect(timerAt(T0, t, NO_SHARED_STATE, left(10.5 * MIN))).toBe(left(10.5 * MIN));
  });
  it("is not set past expiry, for nothing held, or beyond setTimeout's range", () => {
    expect(timerAt(T0, t, NO_SHARED_STATE, T0 + 61 * MIN)).toBeUndefined();
    expect(timerAt(T0, undefined, NO_SHARED_STATE, 0)).toBeUndefined();
    const far = timelineOf(record({ expiration: T0 + 40 * 24 * 3600_000 }), policy);
    expect(timerAt(T0, far, NO_SHARED_STATE, 0)).toBeUndefined();
  });
  it("a busy lock pauses refreshes behind for half to one retryBaseMs", () => {
    expect(busyPauseUntil(T0, policy, () => 0)).toBe(T0 + 2_500);
    expect(busyPauseUntil(T0, policy, () => 1)).toBe(T0 + 5_000);
  });
});

describe("what the source returned", () => {
  it("fresh, extended by the SDK's static stability, or expired", () => {
    expect(classifyFetched(T0, T0 + MIN)).toEqual({ kind: "fresh" });
    expect(classifyFetched(T0)).toEqual({ kind: "fresh" });
    expect(classifyFetched(T0, T0 + 7 * MIN, T0 - 1)).toEqual({
      kind: "extended",
      expiredAt: T0 - 1,
      until: T0 + 7 * MIN,
    });
    // An original expiration still ahead is not an extension.
    expect(classifyFetched(T0, T0 + 7 * MIN, T0 + MIN)).toEqual({ kind: "fresh" });
    expect(classifyFetched(T0, T0)).toEqual({ kind: "expired", expiredAt: T0 });
  });
});

describe("patience: how long a caller waits", () => {
  const p = { lockWaitMs: lockWaitMsFor(10_000), lockTtlMs: 10_000 };
  it("the default is one lease plus 2 s", () => {
    expect(lockWaitMsFor(REFRESH_DEFAULTS.lockTtlMs)).toBe(REFRESH_DEFAULTS.lockWaitMs);
    expect(p.lockWaitMs).toBe(12_000);
  });
  it("a caller with no set waits lockWaitMs for the next attempt; one with an expired set does not", () => {
    expect(patienceLeft(p, 3_000, false, false)).toBe(9_000);
    expect(patienceLeft(p, 13_000, false, false)).toBe(-1_000);
    expect(patienceLeft(p, 0, true, false)).toBe(0);
  });
  it("a live attempt is worth one lease plus slack, whoever waits, and no more", () => {
    expect(patienceLeft(p, 0, true, true)).toBe(15_000);
    expect(patienceLeft({ lockWaitMs: 50, lockTtlMs: 10_000 }, 14_000, false, true)).toBe(1_000);
    expect(patienceLeft({ lockWaitMs: 60_000, lockTtlMs: 10_000 }, 0, false, true)).toBe(60_000);
  });
  it("polls at the jittered interval, or until the backoff ends, at most 250 ms", () => {
    expect(pollDelayMs(50, 0, () => 0)).toBe(25);
    expect(pollDelayMs(50, 120, () => 0)).toBe(120);
    expect(pollDelayMs(50, 10_000, () => 0)).toBe(250);
  });
});

describe("shared state is advice, never a veto", () => {
  const YEAR_5138 = Date.UTC(5138, 10, 16);
  it("an attempt mark further ahead than one lease (plus slack) is ignored", () => {
    expect(
      plausibleView({ attemptUntil: YEAR_5138, nextAttemptAt: 0, failures: 0 }, T0, 10_000, policy),
    ).toEqual({
      view: NO_SHARED_STATE,
      ignored: "attempt",
    });
    const live = { attemptUntil: T0 + 10_000, nextAttemptAt: 0, failures: 0 };
    expect(plausibleView(live, T0, 10_000, policy)).toEqual({ view: live });
  });
  it("a backoff further ahead than retryMaxMs (plus slack) is ignored", () => {
    expect(
      plausibleView({ attemptUntil: 0, nextAttemptAt: YEAR_5138, failures: 3 }, T0, 10_000, policy),
    ).toEqual({
      view: NO_SHARED_STATE,
      ignored: "backoff",
    });
    const backoff = { attemptUntil: 0, nextAttemptAt: T0 + 60_000, failures: 9 };
    expect(plausibleView(backoff, T0, 10_000, policy)).toEqual({ view: backoff });
  });
});
