import { CacheArgumentError, CacheConfigError, fromCache } from "@credcache/core";
import { createTestClock } from "@credcache/test-suite";
import { afterEach, describe, expect, it, vi } from "vitest";
import { memoryCache } from "../src/index.js";

const manualClock = createTestClock;

/** A store on a manual clock (starting at `start`, default now) and the clock. */
function onManualClock(start?: number) {
  const clock = manualClock(start);
  return { clock, store: memoryCache({ clock }) };
}

function record(id = "ASIAEXAMPLE0000001") {
  return {
    v: 1,
    accessKeyId: id,
    secretAccessKey: `secret-${id}-${"s".repeat(30)}`,
    sessionToken: `token-${id}-${"t".repeat(700)}`,
    expiration: 1_700_000_000_000 + 3_600_000,
    cachedAt: 1_700_000_000_000,
    source: "test",
  };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("memoryCache: values", () => {
  it("stores, overwrites and removes; a missing key is a miss", async () => {
    const store = memoryCache();
    expect(await store.get("k")).toBeUndefined();
    await store.set("k", record("A"));
    expect(await store.get("k")).toEqual(record("A"));
    await store.set("k", record("B"), 60);
    expect(await store.get("k")).toEqual(record("B"));
    await store.remove("k");
    expect(await store.get("k")).toBeUndefined();
    await store.remove("never-set");
  });

  it("keeps its own copy: neither the caller's object nor a returned value can change the stored one", async () => {
    const store = memoryCache();
    const original = record();
    await store.set("k", original);
    original.secretAccessKey = "changed-by-caller";
    const first = (await store.get("k")) as ReturnType<typeof record>;
    expect(first.secretAccessKey).toBe(record().secretAccessKey);
    first.secretAccessKey = "changed-by-reader";
    const second = (await store.get("k")) as ReturnType<typeof record>;
    expect(second.secretAccessKey).toBe(record().secretAccessKey);
    expect(second).not.toBe(first);
  });

  it("copies nested and deep values faithfully", async () => {
    const store = memoryCache();
    let deep: unknown = "bottom";
    for (let i = 0; i < 200; i++) deep = [deep];
    const nested = { a: [1, { b: null, c: true }], d: { e: "é/../🔑" } };
    await store.set("deep", deep);
    await store.set("nested", nested);
    expect(await store.get("deep")).toEqual(deep);
    const copy = (await store.get("nested")) as typeof nested;
    expect(copy).toEqual(nested);
    (copy.a[1] as { b: unknown }).b = "mutated";
    expect(await store.get("nested")).toEqual(nested);
  });

  it("keeps an own __proto__ key as data and never turns it into a prototype", async () => {
    const store = memoryCache();
    await store.set("k", JSON.parse('{"__proto__": {"polluted": true}, "a": 1}'));
    const value = (await store.get("k")) as Record<string, unknown>;
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(Object.hasOwn(value, "__proto__")).toBe(true);
    expect((value as { polluted?: unknown }).polluted).toBeUndefined();
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
  });
});

describe("memoryCache: bad input", () => {
  it("rejects a bad max at construction, saying what to do", () => {
    for (const max of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, "10", null]) {
      let error: unknown;
      try {
        memoryCache({ max: max as number });
      } catch (caught) {
        error = caught;
      }
      expect(error, `max=${String(max)}`).toBeInstanceOf(CacheConfigError);
      expect((error as CacheConfigError).code).toBe("ERR_CREDCACHE_CONFIG");
      expect((error as Error).message).toMatch(
        /"max" must be a positive integer.*omit it for the default of 100/,
      );
    }
    expect(() => memoryCache({ clock: {} as never })).toThrow(CacheConfigError);
  });

  it("caps max at 1,000,000 with CacheConfigError instead of an out-of-memory crash", async () => {
    // 1e9 and 2^31 made lru-cache allocate gigabytes up front (an uncatchable OOM);
    // 2^32 and above gave a raw RangeError.
    for (const max of [1_000_001, 1e9, 2 ** 31, 2 ** 32, Number.MAX_SAFE_INTEGER, 1e300]) {
      expect(() => memoryCache({ max }), `max=${max}`).toThrow(
        /"max" must be a positive integer of at most 1000000 .*got /,
      );
    }
    const largest = memoryCache({ max: 1_000_000 });
    await largest.set("k", record());
    expect(await largest.get("k")).toEqual(record());
  });

  it("describes a max JSON.stringify cannot show (BigInt, cycles) in a CacheConfigError", () => {
    const cycle: { self?: unknown } = {};
    cycle.self = cycle;
    const cases: Array<[unknown, RegExp]> = [
      [10n, /got 10n;/],
      [cycle, /got an object;/],
      [Symbol("s"), /got Symbol\(s\);/],
      [Object.create(null), /got an object;/],
      ["x".repeat(10_000), /got "x{10,60}\.\.\.;/],
    ];
    for (const [max, message] of cases) {
      expect(() => memoryCache({ max: max as number }), String(message)).toThrow(CacheConfigError);
      expect(() => memoryCache({ max: max as number })).toThrow(message);
    }
  });

  it("rejects bad keys, TTLs and values with CacheArgumentError and loses nothing", async () => {
    const store = memoryCache();
    await store.set("k", record());
    const attempts = [
      () => store.get(""),
      () => store.set("", record()),
      () => store.remove(""),
      () => store.get("x".repeat(5000)),
      () => store.set("k", record("OTHER"), -1),
      () => store.set("k", record("OTHER"), Number.NaN),
      () => store.set("k", record("OTHER"), Number.POSITIVE_INFINITY),
      () => store.set("k", undefined),
      () => store.set("k", { fn: () => 1 }),
      () => store.acquireLock!("", { ttlMs: 1000 }),
      () => store.acquireLock!("k", { ttlMs: 0 }),
    ];
    for (const attempt of attempts) {
      const error = await attempt().then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(error).toBeInstanceOf(CacheArgumentError);
      expect((error as CacheArgumentError).code).toBe("ERR_CREDCACHE_ARGUMENT");
    }
    expect(await store.get("k")).toEqual(record());
  });
});

describe("memoryCache: TTL (injected clock, no sleeping)", () => {
  it.each([
    { name: "expires an entry after its TTL in seconds", value: record(), ttl: 60, alive: 59_999, gone: 2 },
    { name: "honours fractional TTLs", value: "v", ttl: 0.25, alive: 200, gone: 100 },
  ])("$name", async ({ value, ttl, alive, gone }) => {
    const { clock, store } = onManualClock();
    await store.set("k", value, ttl);
    clock.advance(alive);
    expect(await store.get("k")).toEqual(value);
    clock.advance(gone);
    expect(await store.get("k")).toBeUndefined();
  });

  it("treats TTL 0 and undefined as no expiry", async () => {
    const { clock, store } = onManualClock();
    await store.set("zero", "a", 0);
    await store.set("none", "b");
    clock.advance(10 * 365 * 24 * 3_600_000);
    expect(await store.get("zero")).toBe("a");
    expect(await store.get("none")).toBe("b");
  });

  it("never extends an entry's life on read", async () => {
    const { clock, store } = onManualClock();
    await store.set("k", "v", 10);
    for (let i = 0; i < 9; i++) {
      clock.advance(1_000);
      expect(await store.get("k")).toBe("v");
    }
    clock.advance(1_001);
    expect(await store.get("k")).toBeUndefined();
  });

  it("works with a clock that starts at 0", async () => {
    const { clock, store } = onManualClock(0);
    await store.set("k", "v", 1);
    clock.advance(1_001);
    expect(await store.get("k")).toBeUndefined();
  });

  it("a write resets the TTL", async () => {
    const { clock, store } = onManualClock();
    await store.set("k", "old", 10);
    clock.advance(9_000);
    await store.set("k", "new", 10);
    clock.advance(9_000);
    expect(await store.get("k")).toBe("new");
  });
});

describe("memoryCache: bounded", () => {
  it("evicts the least recently used entry at max", async () => {
    const store = memoryCache({ max: 3 });
    await store.set("a", 1);
    await store.set("b", 2);
    await store.set("c", 3);
    expect(await store.get("a")).toBe(1); // a is now more recent than b
    await store.set("d", 4);
    expect(await store.get("b")).toBeUndefined();
    expect(await store.get("a")).toBe(1);
    expect(await store.get("c")).toBe(3);
    expect(await store.get("d")).toBe(4);
  });

  it("holds at most max entries however many are written", async () => {
    const store = memoryCache({ max: 10 });
    for (let i = 0; i < 1_000; i++) await store.set(`k${i}`, i);
    let present = 0;
    for (let i = 0; i < 1_000; i++) if ((await store.get(`k${i}`)) !== undefined) present++;
    expect(present).toBe(10);
  });
});

describe("memoryCache: secrets of dropped entries", () => {
  /**
   * The store keeps the `structuredClone` it makes on `set`; spying on it gives the test
   * the very object the store holds.
   */
  async function storedObjectOf(set: () => Promise<void>): Promise<ReturnType<typeof record>> {
    const spy = vi.spyOn(globalThis, "structuredClone");
    await set();
    const stored = spy.mock.results.at(-1)?.value as ReturnType<typeof record>;
    spy.mockRestore();
    expect(stored.secretAccessKey).toMatch(/^secret-/);
    return stored;
  }

  function expectBlanked(stored: ReturnType<typeof record>) {
    expect(stored.secretAccessKey).toBe("");
    expect(stored.sessionToken).toBe("");
    expect(stored.accessKeyId).toBe("");
  }

  it("blanks an evicted entry", async () => {
    const store = memoryCache({ max: 1 });
    const handedIn = record("A");
    const stored = await storedObjectOf(() => store.set("a", handedIn));
    const readBack = await store.get("a");
    await store.set("b", record("B"));
    expectBlanked(stored);
    // What callers hold is theirs and untouched.
    expect(handedIn).toEqual(record("A"));
    expect(readBack).toEqual(record("A"));
  });

  it("blanks a removed entry", async () => {
    const store = memoryCache();
    const stored = await storedObjectOf(() => store.set("a", record()));
    await store.remove("a");
    expectBlanked(stored);
  });

  it("blanks a replaced entry", async () => {
    const store = memoryCache();
    const stored = await storedObjectOf(() => store.set("a", record("OLD")));
    await store.set("a", record("NEW"));
    expectBlanked(stored);
    expect(await store.get("a")).toEqual(record("NEW"));
  });

  it("blanks an expired entry on the next read or write, even one never read again", async () => {
    const { clock, store } = onManualClock();
    const read = await storedObjectOf(() => store.set("read", record("R"), 1));
    const unread = await storedObjectOf(() => store.set("unread", record("U"), 1));
    clock.advance(1_001);
    expect(await store.get("read")).toBeUndefined();
    expectBlanked(read);
    await store.set("other", "x");
    expectBlanked(unread);
  });

  it("blanks everything on close", async () => {
    const store = memoryCache();
    const stored = await storedObjectOf(() => store.set("a", record()));
    await store.close!();
    expectBlanked(stored);
    expect(await store.get("a")).toBeUndefined();
  });
});

describe("memoryCache: in-process lock", () => {
  it("gives the lock to exactly one caller until it is released", async () => {
    const store = memoryCache();
    const handles = await Promise.all(
      Array.from({ length: 10 }, () => store.acquireLock!("k", { ttlMs: 10_000 })),
    );
    const held = handles.filter((handle) => handle !== undefined);
    expect(held).toHaveLength(1);
    expect(await store.acquireLock!("k", { ttlMs: 10_000 })).toBeUndefined();
    expect(await store.acquireLock!("other", { ttlMs: 10_000 })).toBeDefined();
    await held[0]!.release();
    const next = await store.acquireLock!("k", { ttlMs: 10_000 });
    expect(next).toBeDefined();
    expect(next!.takenOver).toBe(false);
  });

  it("takes over a lock that was never released once its lease ends; the old handle cannot free it", async () => {
    const { clock, store } = onManualClock();
    const first = await store.acquireLock!("k", { ttlMs: 5_000 });
    clock.advance(4_999);
    expect(await store.acquireLock!("k", { ttlMs: 5_000 })).toBeUndefined();
    clock.advance(2);
    const second = await store.acquireLock!("k", { ttlMs: 5_000 });
    expect(second?.takenOver).toBe(true);
    await first!.release();
    expect(await store.acquireLock!("k", { ttlMs: 5_000 })).toBeUndefined();
    await second!.release();
    await second!.release();
    expect(await store.acquireLock!("k", { ttlMs: 5_000 })).toBeDefined();
  });
});

describe("memoryCache: keys()", () => {
  it("lists the live keys as given to set: not removed, expired or evicted ones, and no lock keys", async () => {
    const clock = manualClock();
    const store = memoryCache({ clock, max: 4 });
    expect(await store.keys!()).toEqual([]);
    await store.set("evicted-first", 0);
    await store.set("forever", 1);
    await store.set("short", 2, 1);
    await store.set("ключ/🔑/../x", 3, 60);
    await store.set("removed", 4);
    await store.remove("removed");
    await store.set("last", 5);
    await store.acquireLock!("locked-only", { ttlMs: 10_000 });
    expect((await store.keys!()).sort()).toEqual(["forever", "last", "short", "ключ/🔑/../x"].sort());
    clock.advance(1_001);
    expect((await store.keys!()).sort()).toEqual(["forever", "last", "ключ/🔑/../x"].sort());
  });

  it("does not count as a use: listing changes no entry's recency", async () => {
    const store = memoryCache({ max: 3 });
    await store.set("a", 1);
    await store.set("b", 2);
    await store.set("c", 3);
    await store.keys!();
    await store.set("d", 4);
    // "a" was the least recently used before the listing and stays so: it is the one evicted.
    expect((await store.keys!()).sort()).toEqual(["b", "c", "d"]);
  });
});

describe("memoryCache with core", () => {
  it("serves fromCache: one source call for many resolutions", async () => {
    const store = memoryCache();
    const provider = vi.fn(async () => ({
      accessKeyId: "ASIAEXAMPLE0000001",
      secretAccessKey: "secret-secret-secret",
      sessionToken: "token-token-token",
      expiration: new Date(Date.now() + 3_600_000),
    }));
    const first = fromCache({ provider, cache: store, key: "k", proactiveRefresh: false });
    const second = fromCache({ provider, cache: store, key: "k", proactiveRefresh: false });
    await Promise.all([first(), first(), second(), second()]);
    const identity = await second();
    expect(identity.accessKeyId).toBe("ASIAEXAMPLE0000001");
    expect(provider).toHaveBeenCalledTimes(1);
  });
});
