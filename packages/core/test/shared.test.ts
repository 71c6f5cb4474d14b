import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import {
  type CredentialCache,
  type FromCacheInit,
  fromCache,
  refreshStateKey,
  toRecord,
} from "../src/index.js";
import { thisMachine } from "../src/liveness.js";
import { MIN, recorder, scriptedProvider, scriptedSource, scriptedStore, testClock } from "./harness.js";

/**
 * Two providers over one store stand for two processes: everything they share goes
 * through the store, as between processes (real processes: test/coordination in the CLI).
 */
function twoProcesses(overrides: Partial<FromCacheInit> = {}) {
  const clock = testClock();
  const source = scriptedSource(clock);
  const { store, state: storeState } = scriptedStore(clock);
  const make = (extra: Partial<FromCacheInit> = {}) => {
    const rec = recorder();
    const provider = scriptedProvider({ clock, source, store, rec }, { ...overrides, ...extra });
    return { provider, rec };
  };
  return { clock, source, store, storeState, make };
}

const settle = () => new Promise((r) => setTimeout(r, 20));

describe("fromCache: refresh state shared through the store", () => {
  it("a failure recorded by one process holds back every other: no second attempt within the backoff", async () => {
    const { clock, source, make } = twoProcesses({ retryBaseMs: 60_000, lockWaitMs: 1_000 });
    const a = make();
    await a.provider();
    clock.advance(61 * MIN);
    source.state.fail = () => new Error("IMDS: 500");
    await expect(a.provider()).rejects.toThrow(/500/);
    expect(source.state.calls).toBe(2);
    // A new process, cold: it reads the shared backoff and does not ask the failing source.
    const b = make();
    await expect(b.provider()).rejects.toThrow(/failed 1 time.*IMDS: 500.*next attempt \(by any process\)/);
    expect(source.state.calls, "process b asked nobody").toBe(2);
    // After the backoff, one attempt again.
    clock.advance(60_000);
    source.state.fail = undefined;
    await expect(b.provider()).resolves.toMatchObject({ accessKeyId: expect.stringMatching(/^ASIATEST/) });
    expect(source.state.calls).toBe(3);
  });

  it("inside the refresh window, a failure in one process keeps the others from asking, and all keep serving", async () => {
    const { clock, source, make } = twoProcesses({ retryBaseMs: 60_000 });
    const a = make();
    const first = await a.provider();
    const b = make();
    await b.provider();
    clock.advance(52 * MIN); // 8 min left
    source.state.fail = () => new Error("throttled");
    expect((await a.provider()).accessKeyId).toBe(first.accessKeyId);
    await settle();
    expect(source.state.calls).toBe(2);
    for (let i = 0; i < 20; i++) expect((await b.provider()).accessKeyId).toBe(first.accessKeyId);
    await settle();
    expect(source.state.calls, "b saw a's failure in the store").toBe(2);
  });

  it("a failed refresh behind a valid set is reported once, as a warning, not also as an error", async () => {
    const { clock, source, make } = twoProcesses();
    const a = make();
    await a.provider();
    clock.advance(52 * MIN);
    source.state.fail = () => new Error("throttled");
    await a.provider();
    await settle();
    expect(a.rec.of("refresh-failure")).toHaveLength(1);
    expect(a.rec.lines.filter((l) => l.level === "warn" && l.text.includes("throttled"))).toHaveLength(1);
    expect(a.rec.lines.filter((l) => l.level === "error")).toEqual([]);
  });

  it("the holder's extra try never runs past its lease (two attempts would be in flight)", async () => {
    const source = scriptedSource(Date);
    const { store } = scriptedStore(Date);
    source.state.delayMs = 300;
    source.state.fail = () => new Error("slow and failing");
    const provider = fromCache({
      provider: source.provider,
      cache: store,
      key: "k",
      proactiveRefresh: false,
      holderRetries: 1,
      lockTtlMs: 500, // a second 300 ms try after the first would end past the lease
      lockWaitMs: 100,
    });
    await expect(provider()).rejects.toThrow(/slow and failing/);
    expect(source.state.calls).toBe(1);
  });

  it("a waiter keeps waiting for a live attempt past its own patience, and gets its result (no made-up failure)", async () => {
    const source = scriptedSource(Date);
    const { store } = scriptedStore(Date);
    source.state.delayMs = 300;
    const make = () =>
      fromCache({
        provider: source.provider,
        cache: store,
        key: "k",
        proactiveRefresh: false,
        lockWaitMs: 50,
      });
    const holder = make()();
    await new Promise((r) => setTimeout(r, 50));
    const waiter = await make()();
    expect(waiter.accessKeyId).toBe((await holder).accessKeyId);
    expect(source.state.calls).toBe(1);
  });

  it("a holder whose own try failed but whose peer succeeded leaves no failure behind", async () => {
    const { clock, source, store, make } = twoProcesses();
    const realProvider = source.provider;
    let peerWritesThenFail = false;
    source.provider = async (p?: Record<string, unknown>) => {
      const fresh = await realProvider(p);
      if (!peerWritesThenFail) return fresh;
      // A peer writes a fresh set while this try fails.
      await store.set("k", { ...toRecord(fresh, clock.now()) }, 3600);
      throw new Error("timed out");
    };
    const a = make();
    await a.provider();
    // One earlier failure is on record.
    await store.set(
      refreshStateKey("k"),
      { v: 1, kind: "refresh-state", failures: 1, nextAttemptAt: 0 },
      600,
    );
    clock.advance(61 * MIN);
    peerWritesThenFail = true;
    await a.provider();
    expect(a.rec.of("refresh-start"), "this process did try").toHaveLength(2);
    expect(store.data.has(refreshStateKey("k")), "the shared failure count is cleared").toBe(false);
  });

  it("a live attempt in another process: a caller without credentials waits for its result instead of asking too", async () => {
    const { clock, source, store, make } = twoProcesses();
    const a = make();
    source.state.delayMs = 60;
    const pendingA = a.provider();
    await new Promise((r) => setTimeout(r, 10));
    const b = make();
    const [x, y] = await Promise.all([pendingA, b.provider()]);
    expect(source.state.calls).toBe(1);
    expect(y.accessKeyId).toBe(x.accessKeyId);
    expect(store.data.has(refreshStateKey("k")), "a cleared its attempt mark").toBe(false);
    void clock;
  });

  it("a holder that died on this machine is taken over at once, not after its lease", async () => {
    const { clock, source, store, make } = twoProcesses({ lockTtlMs: 10 * MIN, lockWaitMs: 30_000 });
    const dead = spawnSync(process.execPath, ["-e", "0"]).pid;
    // The dead process holds the lock and its attempt mark says it runs for 10 more minutes.
    store.locks.set("k", { token: -1, expiresAt: clock.now() + 10 * MIN });
    await store.set(
      refreshStateKey("k"),
      {
        v: 1,
        kind: "refresh-state",
        failures: 0,
        nextAttemptAt: 0,
        attempt: { id: "dead-one", machine: thisMachine(), pid: dead, until: clock.now() + 10 * MIN },
      },
      600,
    );
    const b = make();
    const got = await b.provider();
    expect(got.accessKeyId).toMatch(/^ASIATEST/);
    expect(source.state.calls).toBe(1);
  });

  it("a holder that fails hands over at once: its lock is released and the failure is shared", async () => {
    // No patience: a holder with patience left waits for the next shared attempt (below).
    const { clock, source, store, make } = twoProcesses({ retryBaseMs: 1, lockWaitMs: 0 });
    const a = make();
    source.state.fail = () => new Error("timed out");
    await expect(a.provider()).rejects.toThrow(/timed out/);
    expect(store.locks.size, "no lock left for the lease to run out").toBe(0);
    const state = JSON.parse(store.data.get(refreshStateKey("k"))!.value);
    expect(state).toMatchObject({ failures: 1, error: { message: "timed out" } });
    expect(state.attempt).toBeUndefined();
    clock.advance(10);
    source.state.fail = undefined;
    await expect(make().provider()).resolves.toMatchObject({
      accessKeyId: expect.stringMatching(/^ASIATEST/),
    });
  });

  it("a holder whose attempt failed waits, within its patience, for the next shared attempt (and gets its result)", async () => {
    const { clock, source, store, make } = twoProcesses({ retryBaseMs: 2_000, lockWaitMs: 12_000 });
    source.state.fail = () => new Error("IMDS timed out");
    const holder = make();
    const pendingHolder = holder.provider();
    await settle();
    expect(source.state.calls, "the holder tried once").toBe(1);
    expect(JSON.parse(store.data.get(refreshStateKey("k"))!.value)).toMatchObject({ failures: 1 });
    // A second cold process waits for the same next attempt.
    const waiter = make();
    const pendingWaiter = waiter.provider();
    await settle();
    expect(source.state.calls, "nobody asks inside the shared backoff").toBe(1);
    // The outage ends and the backoff runs out, well within both callers' patience.
    source.state.fail = undefined;
    clock.advance(2_000);
    const [x, y] = await Promise.all([pendingHolder, pendingWaiter]);
    expect(x.accessKeyId, "the holder gets credentials instead of its own failure").toMatch(/^ASIATEST/);
    expect(y.accessKeyId).toBe(x.accessKeyId);
    expect(source.state.calls, "one more attempt, by one of them").toBe(2);
    expect(store.data.has(refreshStateKey("k")), "the success cleared the failure").toBe(false);
  });

  it("a holder whose source answered with expired credentials does not wait: asking again soon gives the same", async () => {
    const { clock, source, make } = twoProcesses({ retryBaseMs: 2_000, lockWaitMs: 12_000 });
    source.state.expiration = clock.now() - 1_000;
    await expect(make().provider()).rejects.toThrow(/returned credentials that expired/);
    expect(source.state.calls).toBe(1);
  });

  it("a holder whose attempt failed gives up with its own error when the next attempt is beyond its patience", async () => {
    const { source, make } = twoProcesses({ retryBaseMs: 60_000, lockWaitMs: 5_000 });
    source.state.fail = () => new Error("IMDS: 404 no role");
    await expect(make().provider()).rejects.toThrow("IMDS: 404 no role");
    expect(source.state.calls).toBe(1);
  });

  it("fencing: a holder that resumes after a pause never replaces the newer set a successor wrote", async () => {
    const { clock, source, store, make } = twoProcesses({ lockTtlMs: 1_000 });
    const a = make();
    let releasePaused!: () => void;
    const paused = new Promise<void>((r) => {
      releasePaused = r;
    });
    const realProvider = source.provider;
    let calls = 0;
    const pausingSource = async (p?: Record<string, unknown>) => {
      const got = await realProvider(p);
      if (++calls === 1) await paused; // a's fetch returns, then a is paused before writing
      return got;
    };
    const holder = fromCache({
      provider: pausingSource,
      cache: store,
      key: "k",
      clock,
      random: () => 0,
      proactiveRefresh: false,
      lockTtlMs: 1_000,
      lockPollMs: 1,
      holderRetries: 0,
    });
    const pendingHolder = holder();
    await settle();
    // The holder's lease runs out; a successor takes the lock and writes a later set.
    clock.advance(2_000);
    const successor = await a.provider();
    releasePaused();
    const resumed = await pendingHolder;
    const stored = JSON.parse(store.data.get("k")!.value);
    expect(stored.accessKeyId, "the store keeps the successor's set").toBe(successor.accessKeyId);
    expect(resumed.accessKeyId, "the resumed holder adopts it too").toBe(successor.accessKeyId);
    expect((await make().provider()).accessKeyId, "a later process is served the newer set").toBe(
      successor.accessKeyId,
    );
  });

  it("fencing never keeps an expired set: long-term keys past their 15 min are replaced by what the source returns", async () => {
    const { clock, source, store, make } = twoProcesses();
    Object.assign(store, { scope: "host" });
    source.state.expiration = null;
    const old = await make().provider();
    clock.advance(16 * MIN);
    const next = await make().provider();
    expect(next.accessKeyId, "the caller gets the new keys").not.toBe(old.accessKeyId);
    expect(JSON.parse(store.data.get("k")!.value).accessKeyId, "and the store holds them").toBe(
      next.accessKeyId,
    );
  });

  it("an extended set from the SDK's static stability is served as extended, never stored; the next process fetches a valid one", async () => {
    const { clock, source, store, make } = twoProcesses({ retryBaseMs: 1 });
    const realProvider = source.provider;
    let first = true;
    source.provider = async (p?: Record<string, unknown>) => {
      const got = await realProvider(p);
      if (!first) return got;
      first = false;
      // What the SDK returns when IMDS serves an expired set: a new expiration 5-10 min out.
      return {
        ...got,
        expiration: new Date(clock.now() + 7 * MIN),
        originalExpiration: new Date(clock.now() - 1_000),
      };
    };
    const a = make();
    const extended = await a.provider();
    expect(a.rec.of("extended")).toHaveLength(1);
    expect(a.rec.lines.some((l) => l.text.includes("Attempting credential expiration extension"))).toBe(true);
    expect(extended.expiration!.getTime()).toBe(clock.now() + 7 * MIN);
    expect(store.data.has("k"), "never written as fresh").toBe(false);
    clock.advance(10);
    const b = make();
    const valid = await b.provider();
    expect(valid.accessKeyId).not.toBe(extended.accessKeyId);
    expect(valid.expiration!.getTime()).toBeGreaterThan(clock.now() + 30 * MIN);
  });
});

describe("fromCache: shared state is advice, never a veto", () => {
  const YEAR_5138 = Date.UTC(5138, 10, 16);
  const HOSTILE = "\u001b[2J\u001b]0;pwned\u0007";
  /** What another tenant writes under `k#refresh`. */
  const plant = (store: CredentialCache, state: object) =>
    store.set(refreshStateKey("k"), { v: 1, kind: "refresh-state", ...state }, 600);

  it("a planted attempt mark far ahead is ignored: a cold caller asks the source at once, with an event", async () => {
    const { source, store, make } = twoProcesses();
    await plant(store, {
      failures: 0,
      nextAttemptAt: 0,
      attempt: { id: HOSTILE, machine: HOSTILE, pid: 1, until: YEAR_5138 },
    });
    const a = make();
    await expect(a.provider()).resolves.toMatchObject({ accessKeyId: expect.stringMatching(/^ASIATEST/) });
    expect(source.state.calls).toBe(1);
    expect(a.rec.of("lock-busy"), "it did not wait").toHaveLength(0);
    const ignored = a.rec.of("state-ignored");
    expect(ignored.length).toBeGreaterThan(0);
    expect(ignored[0]!.reason).toMatch(/^attempt mark \d+ s ahead$/);
  });

  it("a planted backoff far ahead is ignored: no failure, and none of its text reaches the caller", async () => {
    const { source, store, make } = twoProcesses();
    await plant(store, {
      failures: 7,
      nextAttemptAt: YEAR_5138,
      error: { name: "Error", message: `down ${HOSTILE}` },
    });
    const a = make();
    await expect(a.provider()).resolves.toMatchObject({ accessKeyId: expect.stringMatching(/^ASIATEST/) });
    expect(source.state.calls).toBe(1);
    expect(a.rec.of("state-ignored")[0]?.reason).toMatch(/^backoff \d+ s ahead$/);
    expect(JSON.stringify(a.rec.events) + a.rec.lines.map((l) => l.text).join("\n")).not.toContain("pwned");
  });

  it("an attempt mark planted again and again (each one lease ahead) holds a caller for one bounded wait, then the source", async () => {
    const clock = testClock();
    const source = scriptedSource(clock);
    const { store } = scriptedStore(clock);
    const replant = () =>
      plant(store, {
        failures: 0,
        nextAttemptAt: 0,
        attempt: { id: "planted", machine: "elsewhere", pid: 1, until: clock.now() + 10_000 },
      });
    await replant();
    const realGet = store.get.bind(store);
    // Every read finds a fresh mark: the attacker rewrites it as fast as the victim reads.
    store.get = async (key: string) => {
      if (key === refreshStateKey("k")) {
        clock.advance(50);
        await replant();
      }
      return realGet(key);
    };
    const rec = recorder();
    const provider = scriptedProvider(
      { clock, source, store, rec },
      { lockWaitMs: 1_000, lockTtlMs: 10_000 },
    );
    await expect(provider()).resolves.toMatchObject({ accessKeyId: expect.stringMatching(/^ASIATEST/) });
    expect(source.state.calls).toBe(1);
  });
});

describe("fromCache: controls keep their word", () => {
  it("after close(), a call never locks or fetches: it answers from what is valid, else fails", async () => {
    const { clock, source, storeState, make } = twoProcesses();
    const a = make();
    const first = await a.provider();
    await a.provider.close();
    expect((await a.provider()).accessKeyId).toBe(first.accessKeyId);
    clock.advance(61 * MIN);
    const locksBefore = storeState.locksTaken;
    await expect(a.provider()).rejects.toThrow(/closed/);
    await expect(a.provider({ forceRefresh: true })).rejects.toThrow(/closed/);
    expect(source.state.calls).toBe(1);
    expect(storeState.locksTaken).toBe(locksBefore);
  });

  it("invalidate() resets the failure count and the shared backoff", async () => {
    const { clock, source, store, make } = twoProcesses({ retryBaseMs: 60_000, lockWaitMs: 1_000 });
    const a = make();
    await a.provider();
    clock.advance(61 * MIN);
    source.state.fail = () => new Error("down");
    await expect(a.provider()).rejects.toThrow(/down/);
    await expect(a.provider()).rejects.toThrow(/next attempt/);
    await a.provider.invalidate();
    expect(store.data.has(refreshStateKey("k"))).toBe(false);
    source.state.fail = undefined;
    await expect(a.provider()).resolves.toMatchObject({ accessKeyId: expect.stringMatching(/^ASIATEST/) });
  });

  it("one failed store read does not keep later refreshes off the store", async () => {
    const { clock, storeState, store, make } = twoProcesses({ cacheTimeoutMs: 30 });
    const a = make();
    storeState.mode = "throw";
    await a.provider();
    storeState.mode = "ok";
    clock.advance(61 * MIN);
    await a.provider();
    expect(JSON.parse(store.data.get("k")!.value).accessKeyId, "the next refresh wrote the store").toMatch(
      /^ASIATEST/,
    );
  });
});
