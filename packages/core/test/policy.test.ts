import { describe, expect, it } from "vitest";
import {
  adopts,
  afterFailure,
  backoffMs,
  busyPauseUntil,
  type CacheRecord,
  classifyFetched,
  decide,
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
  recheckAt,
  recordTtlSeconds,
  stateTtlSeconds,
  supersedes,
  timelineOf,
  timerAt,
  windowAt,
} from "../src/index.js";
import {
  failureAnswersNow,
  holderWaitsAfterFailure,
  invalidateRemoves,
  longTermExpiresAt,
  refreshReasonAt,
  servedStale,
  servingUntil,
  waiterStep,
  waitsForBusyLock,
} from "../src/policy.js";

const MIN = 60_000;
const T0 = Date.UTC(2026, 10, 30, 12, 0, 0);

/** The default windows, with this process's advisory point at 12 min. */
const policy: RefreshPolicy = {
  advisoryMs: 15 * MIN,
  mandatoryMs: 10 * MIN,
  advisoryPointMs: 12 * MIN,
  minValidityMs: 0,
  retryBaseMs: 5_000,
  retryMaxMs: 60_000,
  noExpirationTtlMs: 15 * MIN,
};

function record(over: Partial<CacheRecord> = {}): CacheRecord {
  return {
    v: 1,
    accessKeyId: "ASIAPOLICY",
    secretAccessKey: "s",
    expiration: T0 + 60 * MIN,
    cachedAt: T0,
    ...over,
  };
}

/** `now` as "time left before the record's expiry". */
const left = (ms: number) => T0 + 60 * MIN - ms;

describe("decide: the refresh table, one row at a time (no I/O, no clock)", () => {
  const t = timelineOf(record(), policy);
  const patience = 12_000;

  it("fresh (more than this process's advisory point left): serve, nothing else", () => {
    expect(windowAt(t, left(30 * MIN))).toBe("fresh");
    expect(decide(left(30 * MIN), t, NO_SHARED_STATE, patience)).toBe("serve");
    expect(decide(left(12 * MIN + 1), t, NO_SHARED_STATE, patience)).toBe("serve");
  });

  it("advisory (past this process's point): serve now and refresh behind", () => {
    expect(windowAt(t, left(12 * MIN))).toBe("advisory");
    expect(decide(left(12 * MIN), t, NO_SHARED_STATE, patience)).toBe("serve-and-refresh");
  });

  it("mandatory: still serve now and refresh behind; nobody waits on a valid set", () => {
    expect(windowAt(t, left(10 * MIN))).toBe("mandatory");
    expect(decide(left(10 * MIN), t, NO_SHARED_STATE, patience)).toBe("serve-and-refresh");
    expect(decide(left(1), t, NO_SHARED_STATE, patience)).toBe("serve-and-refresh");
  });

  it("expired: refresh (wait for it)", () => {
    expect(windowAt(t, left(0))).toBe("expired");
    expect(decide(left(0), t, NO_SHARED_STATE, patience)).toBe("refresh");
    expect(decide(T0, undefined, NO_SHARED_STATE, patience), "no set at all").toBe("refresh");
  });

  it("below the caller's own floor (the CLI's minimum validity): wait, like expired", () => {
    const cli = timelineOf(record(), { ...policy, minValidityMs: 6 * MIN });
    expect(decide(left(6 * MIN + 1), cli, NO_SHARED_STATE, patience)).toBe("serve-and-refresh");
    expect(decide(left(6 * MIN), cli, NO_SHARED_STATE, patience)).toBe("refresh");
  });

  it("a live attempt by another process: valid sets are served without a second attempt; others wait for it", () => {
    const live = { ...NO_SHARED_STATE, attemptUntil: left(10 * MIN) + 5_000 };
    expect(decide(left(10 * MIN), t, live, patience)).toBe("serve");
    expect(decide(left(0), t, { ...live, attemptUntil: left(0) + 5_000 }, patience)).toBe("wait");
  });

  it("shared backoff: valid sets are served without an attempt; callers without one wait only if it ends within their patience", () => {
    const now = left(0);
    const soon = { attemptUntil: 0, nextAttemptAt: now + 5_000, failures: 1 };
    const late = { attemptUntil: 0, nextAttemptAt: now + 30_000, failures: 3 };
    expect(decide(left(10 * MIN), t, { ...soon, nextAttemptAt: left(10 * MIN) + 5_000 }, patience)).toBe(
      "serve",
    );
    expect(decide(now, t, soon, patience), "backoff ends within patience: wait for the next attempt").toBe(
      "refresh",
    );
    expect(decide(now, t, late, patience), "nothing can happen in time: fail fast").toBe("fail");
  });

  it("same set again: fetched with 14 min left, the next attempt waits a quarter of that (3.5 min)", () => {
    const late = record({ cachedAt: left(14 * MIN) });
    expect(recheckAt(late, policy)).toBe(left(14 * MIN) + 3.5 * MIN);
    const lt = timelineOf(late, policy);
    expect(decide(left(14 * MIN) + 3.5 * MIN - 1, lt, NO_SHARED_STATE, patience)).toBe("serve");
    expect(decide(left(14 * MIN) + 3.5 * MIN, lt, NO_SHARED_STATE, patience)).toBe("serve-and-refresh");
    // Fetched while fresh: no such wait.
    expect(recheckAt(record(), policy)).toBe(0);
  });

  it("an extended set is served until its extension ends, never as fresh, then refreshed", () => {
    const until = left(0) + 7 * MIN;
    const et = timelineOf(record(), policy, until);
    expect(et.extended).toBe(true);
    expect(decide(left(0) + MIN, et, NO_SHARED_STATE, patience)).toBe("serve");
    expect(decide(until, et, NO_SHARED_STATE, patience)).toBe("refresh");
  });

  it("credentials without an expiration: fresh for noExpirationTtlMs after caching, then fetched again", () => {
    const nt = timelineOf(record({ expiration: undefined }), policy);
    expect(decide(T0 + 15 * MIN - 1, nt, NO_SHARED_STATE, patience)).toBe("serve");
    expect(decide(T0 + 15 * MIN, nt, NO_SHARED_STATE, patience)).toBe("refresh");
  });
});

describe("backoff and fencing", () => {
  it("backoff doubles from retryBaseMs to retryMaxMs, jittered to 50-100%", () => {
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffMs(n, policy, () => 1 - Number.EPSILON))).toEqual(
      [5_000, 10_000, 20_000, 40_000, 60_000, 60_000].map((ms) => expect.closeTo(ms, 0)),
    );
    expect(backoffMs(1, policy, () => 0)).toBe(2_500);
  });

  it("a write never replaces a set that expires later, or the same set cached later", () => {
    const older = record({ accessKeyId: "ASIAOLD", expiration: T0 + 30 * MIN });
    const newer = record({ accessKeyId: "ASIANEW", expiration: T0 + 90 * MIN });
    expect(supersedes(newer, older)).toBe(true);
    expect(supersedes(older, newer)).toBe(false);
    expect(supersedes(record({ cachedAt: T0 + 1 }), record())).toBe(true);
    expect(supersedes(record(), record())).toBe(false);
  });
});

// ---- the rules around an attempt, each driven with a number for "now" ----

const timed = (r: CacheRecord) => ({ record: r, t: timelineOf(r, policy) });

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

describe("serving: why a refresh behind starts, when a served set is stale, until when it is served", () => {
  const t = timelineOf(record(), policy);
  it("a refresh behind is mandatory in the mandatory window, else advisory", () => {
    expect(refreshReasonAt(t, left(11 * MIN))).toBe("advisory");
    expect(refreshReasonAt(t, left(9 * MIN))).toBe("mandatory");
  });
  it("a set served in the mandatory window while refreshing keeps failing is served stale", () => {
    const failing = { attemptUntil: 0, nextAttemptAt: 0, failures: 2 };
    expect(servedStale("mandatory", failing)).toBe(true);
    expect(servedStale("advisory", failing)).toBe(false);
    expect(servedStale("mandatory", NO_SHARED_STATE)).toBe(false);
  });
  it("after a failed refresh a valid set is served until it expires; an expired one, or none, is not", () => {
    expect(servingUntil(t, left(MIN))).toBe(T0 + 60 * MIN);
    expect(servingUntil(t, left(0))).toBeUndefined();
    expect(servingUntil(undefined, T0)).toBeUndefined();
  });
});

describe("waiting: what a caller without a valid set does next", () => {
  const p = { lockWaitMs: 12_000, lockTtlMs: 10_000 };
  it("gives up when the shared backoff ends beyond its patience", () => {
    const backoff = { attemptUntil: 0, nextAttemptAt: T0 + 20_000, failures: 1 };
    expect(waiterStep(T0, backoff, 12_000)).toBe("give-up");
    expect(waiterStep(T0, backoff, -5)).toBe("give-up");
  });
  it("waits for a live attempt or a backoff that ends within its patience, while it has some", () => {
    const live = { attemptUntil: T0 + 5_000, nextAttemptAt: 0, failures: 0 };
    expect(waiterStep(T0, live, 1_000)).toBe("wait");
    expect(waiterStep(T0, { attemptUntil: 0, nextAttemptAt: T0 + 3_000, failures: 1 }, 12_000)).toBe("wait");
    // A live attempt past the caller's patience: no more waiting, it goes for the lock.
    expect(waiterStep(T0, live, 0)).toBe("lock");
  });
  it("goes for the lock when nothing is live and no backoff runs", () => {
    expect(waiterStep(T0, NO_SHARED_STATE, 12_000)).toBe("lock");
  });
  it("waits on a busy lock while an attempt is live or a failure is recorded, within its patience; else fetches", () => {
    expect(waitsForBusyLock(p, 1_000, true, NO_SHARED_STATE)).toBe(true);
    expect(waitsForBusyLock(p, 1_000, false, { failures: 1 })).toBe(true);
    expect(waitsForBusyLock(p, 14_000, false, { failures: 1 })).toBe(true);
    expect(waitsForBusyLock(p, 15_000, false, { failures: 1 })).toBe(false);
    // A lock with no attempt behind it is waited for lockWaitMs only.
    expect(waitsForBusyLock(p, 11_000, false, { failures: 0 })).toBe(true);
    expect(waitsForBusyLock(p, 12_000, false, { failures: 0 })).toBe(false);
  });
});

describe("after a failed attempt", () => {
  it("the failure ladder answers now with a set in hand, or when the source answered with unusable credentials", () => {
    expect(failureAnswersNow(true, false)).toBe(true);
    expect(failureAnswersNow(false, true)).toBe(true);
    expect(failureAnswersNow(false, false)).toBe(false);
  });
  it("a holder whose attempt failed waits for the next shared attempt, unless forced or without a store", () => {
    expect(holderWaitsAfterFailure(false, true)).toBe(true);
    expect(holderWaitsAfterFailure(true, true)).toBe(false);
    expect(holderWaitsAfterFailure(false, false)).toBe(false);
  });
});

describe("long-term keys and invalidate", () => {
  it("long-term keys are kept noExpirationTtlMs after they were fetched, in L1 and in the store alike", () => {
    const keys = record({ expiration: undefined });
    expect(longTermExpiresAt(keys, policy)).toBe(T0 + 15 * MIN);
    expect(timelineOf(keys, policy).expiresAt).toBe(longTermExpiresAt(keys, policy));
    expect(recordTtlSeconds(keys, T0, policy)).toBe(15 * 60);
  });
  it("invalidate removes the stored set only if it is the one dropped (or none was held)", () => {
    expect(invalidateRemoves(record(), "ASIAPOLICY")).toBe(true);
    expect(invalidateRemoves(record({ accessKeyId: "ASIANEWER" }), "ASIAPOLICY")).toBe(false);
    expect(invalidateRemoves(record(), undefined)).toBe(true);
    expect(invalidateRemoves(undefined, "ASIAPOLICY")).toBe(true);
  });
});
