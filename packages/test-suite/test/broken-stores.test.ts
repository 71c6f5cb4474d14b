import { fileURLToPath } from "node:url";
import {
  assertCacheKey,
  assertLockTtl,
  type CacheLock,
  type Clock,
  type CredentialCache,
  expiresAtFromTtl,
} from "@credcache/core";
import { describe, expect, it } from "vitest";
import {
  type CredentialCacheSuiteOptions,
  credentialCacheSuite,
  type SuiteGroup,
  suiteGroups,
} from "../src/index.js";
import { recordingRegistrar } from "./recording-registrar.js";
import { referenceStore } from "./reference-store.js";

// The suite is only worth running if it fails for stores that are wrong. Each case
// runs one group against a store with one realistic bug and names the checks that
// must fail, and one that must still pass (so the failure is the bug, not the harness).

const only = (...groups: SuiteGroup[]) => suiteGroups.filter((group) => !groups.includes(group));

async function runSuite(
  factory: (clock: Clock) => CredentialCache,
  options: Omit<CredentialCacheSuiteOptions, "name">,
  filter?: string,
) {
  const registrar = recordingRegistrar();
  credentialCacheSuite(registrar, (ctx) => factory(ctx.clock), { name: "broken", ...options });
  const outcomes = await registrar.run(filter);
  const failed = outcomes.filter((o) => o.error !== undefined).map((o) => o.title.split(" > ").pop()!);
  const passed = outcomes.filter((o) => o.error === undefined).map((o) => o.title.split(" > ").pop()!);
  return { outcomes, failed, passed };
}

/** A clock-driven copy of the reference store with some methods replaced. */
function patched(clock: Clock, patch: (store: CredentialCache) => Partial<CredentialCache>): CredentialCache {
  const store = referenceStore({ clock });
  return { ...store, ...patch(store) };
}

/** What a broken keys() gets wrong. */
interface KeysBug {
  namespace?: string;
  listExpired?: boolean;
  listRemoved?: boolean;
  listLocks?: boolean;
  repeat?: boolean;
}

/** The reference store with a keys() kept beside it, wrong in the ways `bug` says. */
function withKeys(clock: Clock, bug: KeysBug): CredentialCache {
  const inner = referenceStore({ clock });
  const written = new Map<string, { expiresAt: number | undefined; removed: boolean }>();
  const locked = new Set<string>();
  return {
    ...inner,
    async set(key, value, ttlSeconds) {
      await inner.set(key, value, ttlSeconds);
      written.set(key, { expiresAt: expiresAtFromTtl(ttlSeconds, clock.now()), removed: false });
    },
    async remove(key) {
      await inner.remove(key);
      const entry = written.get(key);
      if (entry) entry.removed = true;
    },
    async acquireLock(key, opts) {
      const lock = await inner.acquireLock!(key, opts);
      if (lock) locked.add(key);
      return lock;
    },
    async keys() {
      const now = clock.now();
      const live = [...written].flatMap(([key, { expiresAt, removed }]) =>
        (removed && !bug.listRemoved) || (expiresAt !== undefined && expiresAt <= now && !bug.listExpired)
          ? []
          : [`${bug.namespace ?? ""}${key}`],
      );
      if (bug.listLocks) live.push(...[...locked].map((key) => `credcache:lock:${key}`));
      return bug.repeat ? [...live, ...live] : live;
    },
  };
}

const LISTS_EXACTLY =
  "keys() lists exactly the keys set, as given to set; not removed ones, never lock entries";
const LEAVES_OUT_EXPIRED = "keys() leaves out expired entries";

describe("the suite catches broken keys()", () => {
  it.each<[string, KeysBug, string[]]>([
    ["a namespace left on the keys", { namespace: "ns:" }, [LISTS_EXACTLY, LEAVES_OUT_EXPIRED]],
    ["expired entries listed", { listExpired: true }, [LEAVES_OUT_EXPIRED]],
    ["removed entries listed", { listRemoved: true }, [LISTS_EXACTLY]],
    ["lock entries listed", { listLocks: true }, [LISTS_EXACTLY]],
    ["a key listed twice", { repeat: true }, [LISTS_EXACTLY, LEAVES_OUT_EXPIRED]],
  ])("%s", async (_label, bug, failing) => {
    for (const injectedClock of [true, false]) {
      const { failed, passed } = await runSuite((clock) => withKeys(injectedClock ? clock : Date, bug), {
        injectedClock,
        lock: true,
        skip: only("keys"),
      });
      expect(failed, `injectedClock: ${injectedClock}`).toEqual(failing);
      expect(passed).toHaveLength(2 - failing.length);
    }
  });

  it("a correct keys() beside the same bookkeeping passes", async () => {
    const { failed, passed } = await runSuite((clock) => withKeys(clock, {}), {
      injectedClock: true,
      lock: true,
      skip: only("keys"),
    });
    expect(failed).toEqual([]);
    expect(passed).toEqual([LISTS_EXACTLY, LEAVES_OUT_EXPIRED]);
  });

  it("a keys() that resolves to something other than an array of strings", async () => {
    for (const keys of [async () => undefined, async () => ["ok", 42], async () => new Set(["x"])]) {
      const { outcomes } = await runSuite(
        (clock) => ({ ...referenceStore({ clock }), keys: keys as () => Promise<string[]> }),
        { injectedClock: true, skip: only("keys") },
        LISTS_EXACTLY,
      );
      expect(String(outcomes[0]?.error)).toMatch(/keys\(\) (resolved to|listed)/);
    }
  });
});

describe("the suite catches broken stores", () => {
  it("remove that does nothing", async () => {
    const { failed, passed } = await runSuite(
      (clock) =>
        patched(clock, () => ({
          async remove(key: string) {
            assertCacheKey(key);
          },
        })),
      { injectedClock: true, skip: only("basic") },
    );
    expect(failed).toContain("remove deletes the entry; removing a missing key resolves");
    expect(passed).toContain("set then get returns the value");
  });

  it("TTLs ignored", async () => {
    const { failed, passed } = await runSuite(
      (clock) =>
        patched(clock, (store) => ({
          set: (key: string, value: unknown) => store.set(key, value),
        })),
      { injectedClock: true, skip: only("ttl") },
    );
    expect(failed).toContain("an entry expires after its TTL, and the key can be set again");
    expect(passed).toContain("TTL 0 and no TTL never expire");
  });

  it("an overwrite without a TTL that keeps the old expiry", async () => {
    const { failed, passed } = await runSuite(
      (clock) => {
        const expiry = new Map<string, number | undefined>();
        const inner = referenceStore({ clock });
        return {
          ...inner,
          async set(key: string, value: unknown, ttlSeconds?: number) {
            const expiresAt = expiresAtFromTtl(ttlSeconds, clock.now());
            const kept = expiresAt ?? expiry.get(key);
            expiry.set(key, kept);
            const left = kept === undefined ? 0 : Math.max(0.001, (kept - clock.now()) / 1000);
            await inner.set(key, value, left);
          },
        };
      },
      { injectedClock: true, skip: only("ttl") },
    );
    expect(failed).toContain("overwriting resets the TTL (no TTL after a TTL never expires)");
    expect(passed).toContain("an entry expires after its TTL, and the key can be set again");
  });

  it("a store that keeps references instead of values", async () => {
    const { failed, passed } = await runSuite(
      () => {
        const values = new Map<string, unknown>();
        return {
          get: async (key) => {
            assertCacheKey(key);
            return values.get(key);
          },
          set: async (key, value, ttl) => {
            assertCacheKey(key);
            expiresAtFromTtl(ttl, Date.now());
            values.set(key, value);
          },
          remove: async (key) => {
            assertCacheKey(key);
            values.delete(key);
          },
        };
      },
      { injectedClock: true, skip: only("basic") },
    );
    expect(failed).toEqual([
      "a value is stored, not referenced: changing the object after set changes nothing",
    ]);
    expect(passed).toContain(
      "values up to 16 KiB round-trip unchanged (objects, arrays, strings, numbers, booleans)",
    );
  });

  it("writes that are visible half-done", async () => {
    const { failed, passed } = await runSuite(
      (clock) =>
        patched(clock, (store) => ({
          // Writes the header first and the payload a moment later, like a non-atomic file write.
          async set(key: string, value: unknown, ttlSeconds?: number) {
            const { payload: _later, ...header } = (value ?? {}) as Record<string, unknown>;
            await store.set(key, header, ttlSeconds);
            await new Promise((resolve) => setImmediate(resolve));
            await store.set(key, value, ttlSeconds);
          },
        })),
      { injectedClock: true, skip: only("concurrency") },
    );
    expect(failed).toContain("200 parallel mixed operations on one key never return a torn or foreign value");
    expect(passed).toContain("parallel writes to 50 different keys all land on their own key");
  });

  it("a read path that merges values naively (prototype pollution)", async () => {
    const merge = (target: Record<string, unknown>, source: Record<string, unknown>) => {
      for (const name of Object.keys(source)) {
        const value = source[name];
        if (value && typeof value === "object" && !Array.isArray(value)) {
          target[name] = merge(
            (target[name] ?? {}) as Record<string, unknown>,
            value as Record<string, unknown>,
          );
        } else {
          target[name] = value;
        }
      }
      return target;
    };
    const { failed, passed } = await runSuite(
      (clock) =>
        patched(clock, (store) => ({
          async get(key: string) {
            const value = await store.get(key);
            if (!value || typeof value !== "object" || Array.isArray(value)) return value;
            return merge({}, value as Record<string, unknown>);
          },
        })),
      { injectedClock: true, lock: true, skip: only("hostile") },
    );
    const polluting = failed.filter((title) => title.startsWith("an object with"));
    expect(polluting).toEqual([
      "an object with a __proto__ key under the key yields fresh credentials through fromCache, never an exception",
      "an object with constructor.prototype keys under the key yields fresh credentials through fromCache, never an exception",
    ]);
    expect(passed).toContain(
      "a record with v: 2 under the key yields fresh credentials through fromCache, never an exception",
    );
    // The suite undid the pollution it detected.
    expect(Object.getOwnPropertyNames(Object.prototype)).not.toContain("credcacheSuitePolluted");
    expect(({} as Record<string, unknown>).v).toBeUndefined();
  });

  it("a lock that is not exclusive", async () => {
    const { failed, passed } = await runSuite(
      (clock) =>
        patched(clock, () => ({
          async acquireLock(key: string, { ttlMs }: { ttlMs: number }): Promise<CacheLock> {
            assertCacheKey(key);
            assertLockTtl(ttlMs);
            return { release: async () => {} };
          },
        })),
      { injectedClock: true, lock: true, skip: only("lock") },
    );
    expect(failed).toContain("exactly one of 10 parallel acquireLock calls gets the lock");
    expect(failed).toContain(
      "acquireLock resolves to undefined while the lock is held; release lets the next caller in",
    );
    expect(passed).toContain("bad input rejects with CacheArgumentError and takes no lock");
  });

  it("a release that frees the lock whoever holds it", async () => {
    const { failed, passed } = await runSuite(
      (clock) => {
        const held = new Map<string, number>();
        return patched(clock, () => ({
          async acquireLock(key: string, { ttlMs }: { ttlMs: number }) {
            assertCacheKey(key);
            assertLockTtl(ttlMs);
            const until = held.get(key);
            if (until !== undefined && until > clock.now()) return undefined;
            held.set(key, clock.now() + ttlMs);
            return { release: async () => void held.delete(key) };
          },
        }));
      },
      { injectedClock: true, lock: true, skip: only("lock") },
    );
    expect(failed).toContain("a release by an old holder after takeover does not free the new holder's lock");
    expect(failed).toContain("releasing twice is harmless and does not free a later holder");
    expect(passed).toContain("exactly one of 10 parallel acquireLock calls gets the lock");
  });

  it("a lock that never expires", async () => {
    const { failed } = await runSuite(
      (clock) => {
        const held = new Set<string>();
        return patched(clock, () => ({
          async acquireLock(key: string, { ttlMs }: { ttlMs: number }) {
            assertCacheKey(key);
            assertLockTtl(ttlMs);
            if (held.has(key)) return undefined;
            held.add(key);
            let released = false;
            return {
              release: async () => {
                if (!released) held.delete(key);
                released = true;
              },
            };
          },
        }));
      },
      { injectedClock: true, lock: true, skip: only("lock") },
      // Only this check: a lock that never frees makes each takeover check wait out its deadline.
      "never released is taken over",
    );
    expect(failed).toEqual(["a lock that is never released is taken over after ttlMs"]);
  }, 60_000);

  it("a lock that only excludes callers in the same process", async () => {
    const registrar = recordingRegistrar();
    const modulePath = fileURLToPath(new URL("./broken-fs-store.mjs", import.meta.url));
    credentialCacheSuite(registrar, () => referenceStore(), {
      name: "in-process lock",
      lock: true,
      crossProcess: { modulePath },
      skip: only("cross-process"),
    });
    const outcomes = await registrar.run("exactly one of several processes");
    expect(outcomes).toHaveLength(1);
    expect(String(outcomes[0]!.error)).toMatch(/processes that got a handle in round 1/);
  }, 60_000);
});
