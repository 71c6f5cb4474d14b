import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import { CacheRecordError, type FromCacheInit, fromCache, toRecord } from "../src/index.js";
import {
  capture,
  MIN,
  recorder,
  scriptedProvider,
  scriptedSource,
  scriptedStore,
  testClock,
} from "./harness.js";

/** A provider over a scripted source and store, with deterministic jitter (advisory point = 15 min). */
function setup(overrides: Partial<FromCacheInit> = {}, lifetimeMs = 60 * MIN) {
  const clock = testClock();
  const source = scriptedSource(clock, lifetimeMs);
  const { store, state: storeState } = scriptedStore(clock);
  const rec = recorder();
  // Callers give up on a lock after 1 s here; each test says when it wants otherwise.
  const provider = scriptedProvider({ clock, source, store, rec }, { lockWaitMs: 1_000, ...overrides });
  return { clock, source, store, storeState, rec, provider };
}

/** Waits until background work settles (it runs on real promises, not on the test clock). */
const settle = () => new Promise((r) => setTimeout(r, 20));

describe("fromCache: the refresh model", () => {
  it("fresh: a second call is served from L1 without calling the source", async () => {
    const { provider, source, clock } = setup();
    const first = await provider();
    clock.advance(30 * MIN); // 30 min left: fresh
    const second = await provider();
    expect(second.accessKeyId).toBe(first.accessKeyId);
    expect(source.state.calls).toBe(1);
    expect(provider.stats().hitsL1).toBe(1);
  });

  it("boundary: 1 ms more than the advisory window is still fresh", async () => {
    const { provider, source, clock } = setup({}, 60 * MIN);
    await provider();
    clock.advance(45 * MIN - 1); // 15 min + 1 ms left
    await provider();
    await settle();
    expect(source.state.calls).toBe(1);
  });

  it("advisory: serves the current credentials at once and refreshes once in the background", async () => {
    const { provider, source, clock, rec } = setup();
    const first = await provider();
    clock.advance(45 * MIN); // exactly 15 min left: advisory
    const during = await Promise.all(Array.from({ length: 20 }, () => provider()));
    // Every caller got the current credentials immediately.
    for (const c of during) expect(c.accessKeyId).toBe(first.accessKeyId);
    await settle();
    expect(source.state.calls).toBe(2);
    expect(rec.of("refresh-start").at(-1)).toMatchObject({ reason: "advisory", background: true });
    const after = await provider();
    expect(after.accessKeyId).not.toBe(first.accessKeyId);
  });

  it("advisory: never waits for a lock someone else holds", async () => {
    const { provider, source, clock, storeState } = setup();
    const first = await provider();
    clock.advance(46 * MIN);
    storeState.lockMode = "busy";
    const served = await provider();
    await settle();
    expect(served.accessKeyId).toBe(first.accessKeyId);
    expect(source.state.calls).toBe(1); // no fetch without the lock
  });

  it("mandatory: even the caller that takes the lock is served the still-valid set at once; the refresh runs behind", async () => {
    const { provider, source, clock } = setup();
    const first = await provider();
    clock.advance(50 * MIN); // exactly 10 min left
    source.state.delayMs = 50;
    const second = await provider();
    expect(second.accessKeyId, "nobody waits while a valid set exists").toBe(first.accessKeyId);
    expect(source.state.calls).toBe(1);
    await new Promise((r) => setTimeout(r, 100));
    expect(source.state.calls).toBe(2);
    expect((await provider()).accessKeyId).not.toBe(first.accessKeyId);
  });

  it("mandatory: 1 ms above the window is advisory (served, refreshed behind)", async () => {
    const { provider, source, clock } = setup();
    const first = await provider();
    clock.advance(50 * MIN - 1);
    const second = await provider();
    expect(second.accessKeyId).toBe(first.accessKeyId);
    await settle();
    expect(source.state.calls).toBe(2);
  });

  it("expired: adopts what another process wrote while it waited for the lock", async () => {
    const { provider, source, clock, store, rec } = setup();
    await provider();
    clock.advance(61 * MIN); // expired
    // Another process holds the lock and is fetching.
    store.locks.set("k", { token: -1, expiresAt: clock.now() + 60_000 });
    const pending = provider();
    await settle();
    const fresh = toRecord(
      {
        accessKeyId: "ASIAOTHERPROCESS",
        secretAccessKey: "SECRETFIXTUREother",
        expiration: new Date(clock.now() + 60 * MIN),
      },
      clock.now(),
    );
    await store.set("k", { ...fresh }, 3600);
    const got = await pending;
    expect(got.accessKeyId).toBe("ASIAOTHERPROCESS");
    expect(source.state.calls).toBe(1);
    expect(rec.of("hit").at(-1), "the adoption is reported as a hit in the store").toMatchObject({
      layer: "l2",
      window: "fresh",
    });
    expect(provider.stats().hitsL2).toBe(1);
  });

  it("expired: double-checks the store after taking the lock", async () => {
    const { provider, source, clock, store } = setup();
    await provider();
    clock.advance(61 * MIN);
    // The store already has newer credentials, but only visible after the first read:
    // simulate by making the first get miss and the second hit.
    const realGet = store.get.bind(store);
    let gets = 0;
    const fresh = toRecord(
      {
        accessKeyId: "ASIAWRITTENMEANWHILE",
        secretAccessKey: "SECRETFIXTUREmeanwhile",
        expiration: new Date(clock.now() + 60 * MIN),
      },
      clock.now(),
    );
    store.get = async (key: string) => {
      if (key === "k") gets += 1;
      if (key === "k" && gets === 2) return { ...fresh };
      return realGet(key);
    };
    const got = await provider();
    expect(got.accessKeyId).toBe("ASIAWRITTENMEANWHILE");
    expect(source.state.calls).toBe(1);
  });

  it("expired: refreshes before answering", async () => {
    const { provider, source, clock } = setup();
    const first = await provider();
    clock.advance(60 * MIN); // exactly at expiry
    const second = await provider();
    expect(second.accessKeyId).not.toBe(first.accessKeyId);
    expect(source.state.calls).toBe(2);
  });

  it("L2: a new process reads the store instead of calling the source", async () => {
    const a = setup();
    await a.provider();
    const rec = recorder();
    const b = fromCache({
      provider: a.source.provider,
      cache: a.store,
      key: "k",
      clock: a.clock,
      proactiveRefresh: false,
      onEvent: rec.onEvent,
    });
    const got = await b();
    expect(got.accessKeyId).toMatch(/^ASIATEST/);
    expect(a.source.state.calls).toBe(1);
    expect(rec.of("hit")[0]).toMatchObject({ layer: "l2" });
  });

  it("credentials without an expiration are kept 15 min (L1 and a host store), so a rotated key reaches every client", async () => {
    const { provider, source, clock, store } = setup();
    Object.assign(store, { scope: "host" });
    source.state.expiration = null;
    const first = await provider();
    expect(store.data.get("k")?.expiresAt).toBe(clock.now() + 15 * MIN);
    clock.advance(15 * MIN - 1);
    expect((await provider()).accessKeyId).toBe(first.accessKeyId);
    expect(source.state.calls).toBe(1);
    clock.advance(1);
    expect((await provider()).accessKeyId).not.toBe(first.accessKeyId);
    expect(source.state.calls).toBe(2);
  });

  it("credentials without an expiration are not written to a store shared beyond the host unless asked", async () => {
    for (const scope of [undefined, "fleet"] as const) {
      const { provider, source, store } = setup();
      if (scope) Object.assign(store, { scope });
      source.state.expiration = null;
      await provider();
      expect(store.data.has("k"), `scope ${scope}`).toBe(false);
    }
    const { provider, source, store } = setup({ shareLongTermCredentials: true });
    source.state.expiration = null;
    await provider();
    expect(store.data.has("k")).toBe(true);
  });

  it("writes a plain-JSON v1 record with epoch-ms times, kept 1 h past expiry for static stability", async () => {
    const { provider, store, clock } = setup({ source: "test" });
    const got = await provider();
    const raw = JSON.parse(store.data.get("k")!.value);
    expect(raw).toMatchObject({ v: 1, accessKeyId: got.accessKeyId, cachedAt: clock.now(), source: "test" });
    expect(raw.expiration).toBe(got.expiration!.getTime());
    expect(store.data.get("k")!.expiresAt).toBe(got.expiration!.getTime() + 60 * MIN);
  });
});

describe("fromCache: single flight", () => {
  it("1,000 concurrent calls on a cold cache make exactly 1 source call", async () => {
    const { provider, source } = setup();
    source.state.delayMs = 5;
    const all = await Promise.all(Array.from({ length: 1000 }, () => provider()));
    expect(source.state.calls).toBe(1);
    expect(new Set(all.map((c) => c.accessKeyId)).size).toBe(1);
  });

  it("two providers sharing a store and its lock make 1 source call", async () => {
    const a = setup();
    a.source.state.delayMs = 10;
    const b = fromCache({
      provider: a.source.provider,
      cache: a.store,
      key: "k",
      clock: a.clock,
      lockPollMs: 1,
      proactiveRefresh: false,
    });
    const [x, y] = await Promise.all([a.provider(), b()]);
    expect(a.source.state.calls).toBe(1);
    expect(x.accessKeyId).toBe(y.accessKeyId);
  });
});

describe("fromCache: source failures in each window", () => {
  it("miss: the source's own error reaches the caller", async () => {
    const { provider, source } = setup();
    source.state.fail = () => Object.assign(new Error("IMDS said no"), { name: "CredentialsProviderError" });
    await expect(provider()).rejects.toThrow("IMDS said no");
  });

  it("advisory: failure is logged, current credentials keep serving, retry waits for the backoff", async () => {
    const { provider, source, clock, rec } = setup({ retryBaseMs: 10_000 });
    const first = await provider();
    clock.advance(46 * MIN);
    source.state.fail = () => new Error("throttled");
    expect((await provider()).accessKeyId).toBe(first.accessKeyId);
    await settle();
    expect(source.state.calls).toBe(2);
    expect(rec.of("refresh-failure")[0]).toMatchObject({ background: true });
    expect(rec.lines.some((l) => l.level === "warn" && l.text.includes("throttled"))).toBe(true);
    // Within the backoff: no new attempt.
    await provider();
    await settle();
    expect(source.state.calls).toBe(2);
    // After the backoff (at most retryBaseMs): one new attempt.
    clock.advance(10_000);
    await provider();
    await settle();
    expect(source.state.calls).toBe(3);
  });

  it("mandatory: after a failed refresh the still-valid set keeps serving, with a stale-served event", async () => {
    const { provider, source, clock, rec } = setup();
    const first = await provider();
    clock.advance(55 * MIN);
    source.state.fail = () => new Error("500 from IMDS");
    const got = await provider();
    expect(got.accessKeyId).toBe(first.accessKeyId);
    await settle();
    expect(source.state.calls).toBe(2);
    // The next calls inside the backoff do not ask the failing source, and say why they get this set.
    expect((await provider()).accessKeyId).toBe(first.accessKeyId);
    expect(rec.of("stale-served")).toHaveLength(1);
    expect(rec.of("stale-served")[0]?.error.message).toContain("500 from IMDS");
    await settle();
    expect(source.state.calls).toBe(2);
  });

  it("expired without staleIfError: a clear error", async () => {
    const { provider, source, clock } = setup();
    await provider();
    clock.advance(61 * MIN);
    source.state.fail = () => new Error("connect ETIMEDOUT");
    await expect(provider()).rejects.toThrow(/expired at .*Enable staleIfError/);
  });

  it("expired with staleIfError: extended by 5–10 min with the static-stability warning, retried after", async () => {
    const { provider, source, clock, rec } = setup({ staleIfError: true, random: () => 0.5 });
    const first = await provider();
    clock.advance(61 * MIN);
    source.state.fail = () => new Error("connect ETIMEDOUT");
    const got = await provider();
    expect(got.accessKeyId).toBe(first.accessKeyId);
    const left = got.expiration!.getTime() - clock.now();
    expect(left).toBeGreaterThanOrEqual(5 * MIN);
    expect(left).toBeLessThanOrEqual(10 * MIN);
    expect(rec.lines.some((l) => l.text.includes("Attempting credential expiration extension"))).toBe(true);
    expect(rec.of("extended")).toHaveLength(1);
    // During the extension: no source calls.
    clock.advance(4 * MIN);
    await provider();
    expect(source.state.calls).toBe(2);
    // After it: try again; the source is back.
    source.state.fail = undefined;
    clock.advance(6 * MIN + 1);
    const renewed = await provider();
    expect(renewed.accessKeyId).not.toBe(first.accessKeyId);
    expect(source.state.calls).toBe(3);
  });

  it("expired credentials and a failing source: the source is not asked on every call", async () => {
    const { provider, source, clock } = setup({ retryBaseMs: 10_000 });
    await provider();
    clock.advance(61 * MIN);
    source.state.fail = () => new Error("throttled");
    await expect(provider()).rejects.toThrow(/expired at/);
    const afterFirst = source.state.calls;
    for (let i = 0; i < 20; i++) await expect(provider()).rejects.toThrow(/expired at/);
    expect(source.state.calls).toBe(afterFirst);
    clock.advance(10_000); // the backoff (at most retryBaseMs) has passed
    source.state.fail = undefined;
    await expect(provider()).resolves.toMatchObject({ accessKeyId: expect.stringMatching(/^ASIATEST/) });
  });

  it("static stability reaches a new process: an expired record in the store is extended when the source fails", async () => {
    const a = setup({ staleIfError: true });
    const first = await a.provider();
    // The record outlives its expiry in the store (kept for static stability).
    expect(a.store.data.get("k")!.expiresAt!).toBeGreaterThan(first.expiration!.getTime());
    a.clock.advance(61 * MIN);
    a.source.state.fail = () => new Error("IMDS is down");
    const rec = recorder();
    const fresh = fromCache({
      provider: a.source.provider,
      cache: a.store,
      key: "k",
      clock: a.clock,
      staleIfError: true,
      proactiveRefresh: false,
      onEvent: rec.onEvent,
    });
    const got = await fresh();
    expect(got.accessKeyId).toBe(first.accessKeyId);
    expect(got.expiration!.getTime()).toBeGreaterThan(a.clock.now());
    expect(rec.of("extended")).toHaveLength(1);
  });

  it("an expired record in the store is never served while the source works", async () => {
    const a = setup({ staleIfError: true });
    const first = await a.provider();
    a.clock.advance(61 * MIN);
    const fresh = fromCache({
      provider: a.source.provider,
      cache: a.store,
      key: "k",
      clock: a.clock,
      staleIfError: true,
      proactiveRefresh: false,
    });
    const got = await fresh();
    expect(got.accessKeyId).not.toBe(first.accessKeyId);
  });

  it("rejects credentials that arrive already expired", async () => {
    const { provider, source, clock, store } = setup();
    source.state.expiration = clock.now() - 1000;
    await expect(provider()).rejects.toThrow(/expired at/);
    // Like the SDK's CredentialsProviderError: a chain must not move on silently.
    await expect(provider()).rejects.toMatchObject({ tryNextLink: false, code: "ERR_CREDCACHE_CREDENTIALS" });
    expect(store.data.has("k"), "nothing stored under the key").toBe(false);
  });

  it("credentials expiring in 1 s are refreshed on the next call after expiry, not served", async () => {
    const { provider, source, clock } = setup();
    source.state.expiration = clock.now() + 1000;
    const first = await provider();
    source.state.expiration = undefined;
    clock.advance(1001);
    const second = await provider();
    expect(second.accessKeyId).not.toBe(first.accessKeyId);
    expect(source.state.calls).toBe(2);
  });

  it("a clock jump of 1 h forward leads to a refresh, not a crash", async () => {
    const { provider, source, clock } = setup();
    const first = await provider();
    clock.advance(60 * MIN + 5);
    const second = await provider();
    expect(second.accessKeyId).not.toBe(first.accessKeyId);
    expect(source.state.calls).toBe(2);
  });

  it("mandatory window with a source that has nothing newer: no fetch on every call", async () => {
    const { provider, source, clock } = setup({ retryBaseMs: 10_000 });
    await provider();
    clock.advance(52 * MIN);
    // The source keeps returning a set with 8 min left (EC2 rotates late).
    source.state.expiration = clock.now() + 8 * MIN;
    await provider();
    await settle();
    const callsAfterRefetch = source.state.calls;
    for (let i = 0; i < 50; i++) await provider();
    expect(source.state.calls).toBe(callsAfterRefetch);
  });
});

describe("fromCache: a failing store never fails a resolution", () => {
  for (const mode of ["throw", "hang", "garbage"] as const) {
    it(`a store that ${mode === "garbage" ? "returns garbage" : mode === "hang" ? "never answers" : "throws"} still yields credentials`, async () => {
      const { provider, storeState, source, rec } = setup({ cacheTimeoutMs: 30 });
      storeState.mode = mode;
      const got = await provider();
      expect(got.accessKeyId).toMatch(/^ASIATEST/);
      expect(source.state.calls).toBe(1);
      if (mode === "garbage") expect(rec.of("record-rejected")[0]?.reason).toBe("unparseable");
      else expect(rec.of("cache-error").length).toBeGreaterThan(0);
      if (mode === "hang") expect(rec.of("cache-error")[0]?.error.code).toBe("ERR_CREDCACHE_TIMEOUT");
    });
  }

  it("a store that reports garbage itself (CacheRecordError) gives a record-rejected event, not a cache error", async () => {
    const { provider, store, rec, storeState } = setup();
    store.get = async () => {
      throw new CacheRecordError("unparseable", "entry file is not JSON");
    };
    await provider();
    expect(rec.of("record-rejected")[0]?.reason).toBe("unparseable");
    expect(rec.of("cache-error")).toHaveLength(0);
    expect(storeState.removes).toBeGreaterThanOrEqual(1);
  });

  it("a store that throws on every call is reported once per resolution", async () => {
    const { provider, storeState, rec } = setup();
    storeState.mode = "throw";
    await provider();
    expect(rec.of("cache-error").filter((e) => e.operation === "get")).toHaveLength(1);
  });

  it("a rejected record is removed from the store", async () => {
    const { provider, store, storeState } = setup();
    const removed: string[] = [];
    const realRemove = store.remove.bind(store);
    store.remove = async (key) => {
      if (JSON.parse(store.data.get(key)?.value ?? "{}").v === 2) removed.push(key);
      return realRemove(key);
    };
    store.data.set("k", { value: JSON.stringify({ v: 2, accessKeyId: "x" }) });
    storeState.mode = "ok";
    await provider();
    expect(removed).toEqual(["k"]);
  });
});

describe("fromCache: locks", () => {
  it("a holder that never releases: the waiter fetches after lockWaitMs", async () => {
    const { provider, source, store, clock, rec } = setup({ lockWaitMs: 50 });
    store.locks.set("k", { token: -1, expiresAt: clock.now() + 10 * MIN });
    const got = await provider();
    expect(got.accessKeyId).toMatch(/^ASIATEST/);
    expect(source.state.calls).toBe(1);
    expect(rec.of("lock-waited")[0]).toMatchObject({ outcome: "timeout" });
  });

  it("a lock call that times out on a working store counts as busy: wait and adopt, do not fetch too", async () => {
    const a = setup({ cacheTimeoutMs: 30 });
    a.source.state.delayMs = 80;
    const realAcquire = a.store.acquireLock!.bind(a.store);
    let calls = 0;
    // The first caller gets the lock; the second one's lock call hangs (a loaded host).
    a.store.acquireLock = (key, opts) => (++calls === 1 ? realAcquire(key, opts) : new Promise(() => {}));
    const b = fromCache({
      provider: a.source.provider,
      cache: a.store,
      key: "k",
      clock: a.clock,
      cacheTimeoutMs: 30,
      lockPollMs: 5,
      proactiveRefresh: false,
    });
    const first = a.provider();
    await new Promise((r) => setTimeout(r, 10));
    const [x, y] = await Promise.all([first, b()]);
    expect(y.accessKeyId).toBe(x.accessKeyId);
    expect(a.source.state.calls).toBe(1);
  });

  it("a dead holder's lease is taken over once it expires", async () => {
    const { provider, source, store, clock, rec } = setup({ lockTtlMs: 5_000 });
    store.locks.set("k", { token: -1, expiresAt: clock.now() - 1 });
    await provider();
    expect(source.state.calls).toBe(1);
    expect(rec.of("lock-acquired")[0]).toMatchObject({ takenOver: true });
    expect(store.locks.size).toBe(0); // released after the refresh
  });
});

describe("fromCache: controls", () => {
  it("forceRefresh bypasses L1 and L2, and identityProperties reach the source", async () => {
    const { provider, source } = setup();
    const first = await provider();
    const forced = await provider({ forceRefresh: true, callerClientConfig: { region: "eu-west-1" } });
    expect(forced.accessKeyId).not.toBe(first.accessKeyId);
    expect(source.state.lastProperties).toEqual({ callerClientConfig: { region: "eu-west-1" } });
  });

  it("invalidate drops L1 and the store entry", async () => {
    const { provider, source, store } = setup();
    await provider();
    await provider.invalidate();
    expect(store.data.has("k")).toBe(false);
    await provider();
    expect(source.state.calls).toBe(2);
  });

  it("invalidate does not undo a racing refresh by another process", async () => {
    const { provider, store, clock } = setup();
    await provider();
    const other = toRecord(
      {
        accessKeyId: "ASIARACINGWRITER",
        secretAccessKey: "SECRETFIXTUREracing",
        expiration: new Date(clock.now() + 60 * MIN),
      },
      clock.now(),
    );
    await store.set("k", { ...other }, 3600);
    await provider.invalidate();
    expect(JSON.parse(store.data.get("k")!.value).accessKeyId).toBe("ASIARACINGWRITER");
  });

  it("stats count hits, misses and source calls", async () => {
    const { provider } = setup();
    await provider();
    await provider();
    await provider();
    expect(provider.stats()).toMatchObject({ misses: 1, sourceCalls: 1, hitsL1: 2 });
  });

  it("rejects bad options with a message that says what to fix", () => {
    const source = async () => ({ accessKeyId: "a", secretAccessKey: "b" });
    expect(() => fromCache({ provider: undefined as never })).toThrow(/provider/);
    expect(() => fromCache({ provider: source, advisoryRefreshMs: -1 })).toThrow(/advisoryRefreshMs/);
    expect(() => fromCache({ provider: source, advisoryRefreshMs: 1000, mandatoryRefreshMs: 2000 })).toThrow(
      /must not exceed/,
    );
    expect(() => fromCache({ provider: source, key: "" })).toThrow(/key/);
  });

  it("proactive refresh: a long-running process has fresh credentials before the SDK asks", async () => {
    // Real time, compressed windows: lifetime 1 s, advisory point at 300 ms left.
    const source = scriptedSource(Date, 1000);
    const { store } = scriptedStore(Date);
    const provider = fromCache({
      provider: source.provider,
      cache: store,
      key: "p",
      advisoryRefreshMs: 300,
      mandatoryRefreshMs: 200,
      random: () => 0,
    });
    const first = await provider();
    await new Promise((r) => setTimeout(r, 1000));
    // No call happened in between, yet the timer refreshed in the background.
    expect(source.state.calls).toBe(2);
    const now = await provider();
    expect(now.accessKeyId).not.toBe(first.accessKeyId);
    provider.close();
  });
});

describe("fromCache: no secrets", () => {
  it("inspect of the provider and of credentials shows no secret", async () => {
    const { provider } = setup();
    const creds = await provider();
    const shown =
      inspect(provider, { depth: 5 }) + inspect(creds, { depth: 5 }) + inspect({ creds }, { depth: 5 });
    capture(shown);
    expect(shown).not.toContain(creds.secretAccessKey);
    expect(shown).not.toContain(creds.sessionToken!);
    expect(shown).toContain("[redacted]");
  });

  it("a store error message that quotes a secret is scrubbed from events and logs", async () => {
    const { provider, store, rec } = setup();
    const creds = await provider();
    store.set = async () => {
      throw new Error(`cannot write ${creds.secretAccessKey} / ${creds.sessionToken}`);
    };
    await provider({ forceRefresh: true });
    const errorEvent = rec.of("cache-error")[0]!;
    expect(errorEvent.error.message).toContain("[redacted]");
    expect(JSON.stringify(rec.events) + rec.lines.map((l) => l.text).join("\n")).not.toContain(
      creds.secretAccessKey,
    );
  });
});
