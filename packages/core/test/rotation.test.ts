import type { AwsCredentialIdentity } from "@smithy/types";
import { describe, expect, it } from "vitest";
import { type CredentialCache, fromCache } from "../src/index.js";
import { issuedSecrets, MIN, recorder, scriptedSource, scriptedStore, testClock } from "./harness.js";

/**
 * A source that behaves like EC2's instance metadata: it hands out the current set, and
 * issues the next one `leadMs` before the current one expires, whoever asks.
 */
function ec2Source(clock: { now(): number }, lifetimeMs: number, leadMs: number) {
  const state = { calls: 0, issued: 0 };
  let current: { identity: AwsCredentialIdentity; expiresAt: number } | undefined;
  const issue = (at: number) => {
    state.issued += 1;
    const secretAccessKey = `SECRETFIXTUREEC2${state.issued}x${Math.random().toString(36).slice(2, 10)}`;
    issuedSecrets.add(secretAccessKey);
    current = {
      identity: {
        accessKeyId: `ASIAEC2${String(state.issued).padStart(9, "0")}`,
        secretAccessKey,
        expiration: new Date(at + lifetimeMs),
      },
      expiresAt: at + lifetimeMs,
    };
  };
  /** Issues every set due by now, as EC2 rotates whether or not anyone asks. */
  const rotate = () => {
    if (!current) issue(clock.now());
    while (current && clock.now() >= current.expiresAt - leadMs) issue(current.expiresAt - leadMs);
  };
  const provider = async (): Promise<AwsCredentialIdentity> => {
    state.calls += 1;
    rotate();
    return { ...(current as { identity: AwsCredentialIdentity }).identity };
  };
  return { provider, state, rotate };
}

/** A seeded random source, so each simulated process picks its own advisory point reproducibly. */
function seeded(seed: number) {
  let x = seed;
  return () => {
    x = (x * 1_103_515_245 + 12_345) % 2 ** 31;
    return x / 2 ** 31;
  };
}

/**
 * Short-lived processes, one every `everyMs` for `forMs`, each resolving credentials once
 * through its own fromCache over one shared store, then closing (as a queue worker does).
 */
async function shortLivedFleet(options: {
  lifetimeMs: number;
  leadMs: number;
  everyMs: number;
  forMs: number;
}) {
  const clock = testClock();
  const source = ec2Source(clock, options.lifetimeMs, options.leadMs);
  const { store } = scriptedStore(clock);
  const random = seeded(7);
  const rec = recorder();
  let expiredServed = 0;
  for (let t = 0; t < options.forMs; t += options.everyMs) {
    const provider = fromCache({
      provider: source.provider,
      cache: store as CredentialCache,
      key: "imds",
      clock,
      random,
      proactiveRefresh: false,
      onEvent: rec.onEvent,
    });
    const identity = await provider();
    if ((identity.expiration?.getTime() ?? 0) <= clock.now()) expiredServed += 1;
    await provider.close();
    clock.advance(options.everyMs);
  }
  source.rotate();
  return { fetches: source.state.calls, rotations: source.state.issued, expiredServed, rec };
}

describe("fromCache: one fetch per rotation, whatever the number of processes", () => {
  it("EC2 issues the next set well before the refresh windows: one fetch per set (a process every 10 s for 6 h)", async () => {
    // Instance credentials are typically valid for hours and replaced about an hour in.
    const run = await shortLivedFleet({
      lifetimeMs: 6 * 60 * MIN,
      leadMs: 5 * 60 * MIN,
      everyMs: 10_000,
      forMs: 6 * 60 * MIN,
    });
    expect(run.expiredServed).toBe(0);
    // 2,160 processes; sets are issued hourly but each is used until its advisory point.
    expect(run.fetches).toBeLessThanOrEqual(run.rotations + 1);
    expect(run.fetches).toBeLessThanOrEqual(3);
  });

  it("the worst case EC2 allows (next set only 5 min before expiry): a few fetches per rotation, not one per process", async () => {
    const run = await shortLivedFleet({
      lifetimeMs: 60 * MIN,
      leadMs: 5 * MIN,
      everyMs: 10_000,
      forMs: 6 * 60 * MIN,
    });
    expect(run.expiredServed).toBe(0);
    // Asking while the source has nothing newer returns the same set; the fleet waits a
    // quarter of the remaining time between such asks: about 5 per rotation, not 2,160.
    expect(run.rotations).toBeGreaterThanOrEqual(6);
    expect(run.fetches).toBeLessThanOrEqual(5 * run.rotations);
    const refreshes = run.rec.of("refresh-start").length;
    expect(refreshes).toBe(run.fetches);
  });

  it("a set fetched inside the advisory window by one process spares the next processes' fetches (shared store)", async () => {
    const clock = testClock();
    const source = scriptedSource(clock);
    const { store } = scriptedStore(clock);
    const make = () =>
      fromCache({
        provider: source.provider,
        cache: store,
        key: "k",
        clock,
        random: () => 0,
        proactiveRefresh: false,
      });
    await make()();
    clock.advance(46 * MIN); // 14 min left: advisory
    // The source has nothing newer: it keeps answering with the same expiry.
    source.state.expiration = clock.now() + 14 * MIN;
    const first = make();
    await first();
    await first.close();
    expect(source.state.calls, "the first process in the window asks").toBe(2);
    for (let i = 0; i < 20; i++) {
      const next = make();
      await next();
      await next.close();
      clock.advance(1000);
    }
    expect(source.state.calls, "20 s later nobody has asked again").toBe(2);
    clock.advance(4 * MIN); // past a quarter of the 14 min that were left
    const later = make();
    await later();
    await later.close();
    expect(source.state.calls).toBe(3);
  });
});

describe("fromCache: close()", () => {
  it("resolves once a background refresh has written the store and released its lock", async () => {
    const clock = testClock();
    const source = scriptedSource(clock);
    const { store } = scriptedStore(clock);
    const provider = fromCache({ provider: source.provider, cache: store, key: "k", clock, random: () => 0 });
    const first = await provider();
    clock.advance(47 * MIN); // 13 min left: advisory
    source.state.delayMs = 50;
    expect((await provider()).accessKeyId, "advisory: served at once").toBe(first.accessKeyId);
    await provider.close();
    expect(source.state.calls).toBe(2);
    expect(store.locks.size, "no lock left behind").toBe(0);
    expect(JSON.parse(store.data.get("k")?.value ?? "{}").accessKeyId).not.toBe(first.accessKeyId);
  });
});

describe("fromCache: close() with a source that never answers", () => {
  it("resolves after lockTtlMs instead of hanging the shutdown", async () => {
    const clock = testClock();
    const { store } = scriptedStore(clock);
    const source = scriptedSource(clock);
    const provider = fromCache({
      provider: source.provider,
      cache: store,
      key: "k",
      clock,
      random: () => 0,
      lockTtlMs: 50,
    });
    await provider();
    clock.advance(47 * MIN); // 13 min left: advisory, so the next call refreshes in the background
    source.state.delayMs = 3_600_000; // and the source never answers
    await provider();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(source.state.calls).toBe(2);
    await provider.close(); // would hang (the test would time out) without the lockTtlMs bound
  });
});
