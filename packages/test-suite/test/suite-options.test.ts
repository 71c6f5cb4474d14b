import { describe, expect, it } from "vitest";
import { createTestClock, credentialCacheSuite, suiteGroups } from "../src/index.js";
import { recordingRegistrar } from "./recording-registrar.js";
import { referenceStore } from "./reference-store.js";

describe("createTestClock", () => {
  it("starts at the real time and moves only when advanced", () => {
    const before = Date.now();
    const clock = createTestClock();
    const { now, advance } = clock;
    expect(now()).toBeGreaterThanOrEqual(before);
    expect(now()).toBeLessThanOrEqual(Date.now());
    const start = now();
    advance(1_500);
    expect(clock.now()).toBe(start + 1_500);
    expect(createTestClock(10).now()).toBe(10);
  });

  it("refuses to go backwards or by a non-number", () => {
    const clock = createTestClock(0);
    expect(() => clock.advance(-1)).toThrow(RangeError);
    expect(() => clock.advance(Number.NaN)).toThrow(RangeError);
    expect(clock.now()).toBe(0);
  });
});

describe("credentialCacheSuite options", () => {
  const factory = () => referenceStore();

  it("registers a describe per group, and only the groups the store can run", async () => {
    const registrar = recordingRegistrar();
    credentialCacheSuite(registrar, factory, { name: "ref", skip: ["hostile", "concurrency", "ttl"] });
    const titles = (await registrar.run("> a missing key")).map((o) => o.title);
    expect(titles).toEqual(["credential cache suite: ref > basic > a missing key resolves to undefined"]);

    const all = recordingRegistrar();
    credentialCacheSuite(all, factory, { name: "ref", lock: true, skip: [] });
    const groups = new Set((await all.run("exactly one of")).map((o) => o.title.split(" > ")[1]));
    expect([...groups]).toEqual(["lock"]);
    expect(suiteGroups).toEqual(["basic", "ttl", "concurrency", "hostile", "lock", "keys", "cross-process"]);
  });

  it("runs the keys group against a store with keys(); without one its checks find nothing to do", async () => {
    const registrar = recordingRegistrar();
    credentialCacheSuite(registrar, (ctx) => referenceStore({ clock: ctx.clock }), {
      name: "with keys",
      injectedClock: true,
      lock: true,
      skip: ["basic", "ttl", "concurrency", "hostile", "lock"],
    });
    const withKeys = await registrar.run();
    expect(withKeys.map((o) => o.title.split(" > ")[1])).toEqual(["keys", "keys"]);
    expect(withKeys.filter((o) => o.error !== undefined)).toEqual([]);

    const written: string[] = [];
    const without = recordingRegistrar();
    credentialCacheSuite(
      without,
      (ctx) => {
        const { keys: _none, ...store } = referenceStore({ clock: ctx.clock });
        return {
          ...store,
          set: (key: string, value: unknown, ttl?: number) => {
            written.push(key);
            return store.set(key, value, ttl);
          },
        };
      },
      { name: "without keys", injectedClock: true, skip: ["basic", "ttl", "concurrency", "hostile"] },
    );
    const outcomes = await without.run();
    expect(outcomes).toHaveLength(2);
    expect(outcomes.filter((o) => o.error !== undefined)).toEqual([]);
    expect(written, "nothing was written for a store that cannot list").toEqual([]);
  });

  it("fails at registration on options that cannot work", () => {
    const registrar = recordingRegistrar();
    expect(() => credentialCacheSuite(registrar, factory, { name: "x", skip: ["locks" as "lock"] })).toThrow(
      /unknown group "locks" in skip; the groups are basic, ttl/,
    );
    expect(() =>
      credentialCacheSuite(registrar, factory, { name: "x", crossProcess: { modulePath: "./store.mjs" } }),
    ).toThrow(/modulePath must be an absolute path/);
    expect(() => credentialCacheSuite(registrar, factory, { name: "" })).toThrow(/options.name/);
    const { afterEach: _missing, ...incomplete } = registrar;
    expect(() =>
      credentialCacheSuite(incomplete as unknown as typeof registrar, factory, { name: "x" }),
    ).toThrow(/needs a afterEach function/);
  });

  it("reports a store that claims lock: true without acquireLock", async () => {
    const registrar = recordingRegistrar();
    const { acquireLock: _none, ...lockless } = referenceStore();
    credentialCacheSuite(registrar, () => lockless, {
      name: "lockless",
      lock: true,
      skip: ["basic", "ttl", "concurrency", "hostile"],
    });
    const outcomes = await registrar.run("exactly one of 10");
    expect(String(outcomes[0]?.error)).toMatch(/options.lock is true but the store has no acquireLock/);
  });

  it("reports a cross-process module that does not load", async () => {
    const registrar = recordingRegistrar();
    credentialCacheSuite(registrar, factory, {
      name: "missing module",
      crossProcess: { modulePath: "/nonexistent/credcache-store-module.mjs" },
      skip: ["basic", "ttl", "concurrency", "hostile"],
    });
    const outcomes = await registrar.run("visible in the others");
    expect(outcomes[0]?.error).toBeDefined();
  });
});
