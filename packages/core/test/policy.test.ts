import { describe, expect, it } from "vitest";
import {
  backoffMs,
  type CacheRecord,
  decide,
  NO_SHARED_STATE,
  type RefreshPolicy,
  recheckAt,
  supersedes,
  timelineOf,
  windowAt,
} from "../src/index.js";

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
