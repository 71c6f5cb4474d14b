import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { CacheConfigError, encryptedCache, fromCache } from "../src/index.js";
import { recorder, scriptedSource, scriptedStore, testClock } from "./harness.js";

const keyA = randomBytes(32);
const keyB = randomBytes(32).toString("base64");

function setup() {
  const clock = testClock();
  const { store } = scriptedStore(clock);
  return { clock, store };
}

describe("encryptedCache", () => {
  it("round-trips a value and stores no plaintext", async () => {
    const { store } = setup();
    const cache = encryptedCache(store, { keys: [keyA] });
    await cache.set("k", { secretAccessKey: "SECRETFIXTUREplain", n: 1 }, 60);
    expect(await cache.get("k")).toEqual({ secretAccessKey: "SECRETFIXTUREplain", n: 1 });
    const raw = store.data.get("k")!.value;
    expect(raw).not.toContain("SECRETFIXTUREplain");
    expect(JSON.parse(raw)).toMatchObject({ enc: "A256GCM" });
  });

  it("a tampered record is a miss and is reported", async () => {
    const { store } = setup();
    const rejected: string[] = [];
    const cache = encryptedCache(store, { keys: [keyA], onReject: (_k, reason) => rejected.push(reason) });
    await cache.set("k", { a: 1 });
    const sealed = JSON.parse(store.data.get("k")!.value);
    const ct = Buffer.from(sealed.ct, "base64");
    ct[0] = (ct[0] ?? 0) ^ 1;
    sealed.ct = ct.toString("base64");
    store.data.set("k", { value: JSON.stringify(sealed) });
    expect(await cache.get("k")).toBeUndefined();
    expect(rejected).toEqual(["authentication failed"]);
  });

  it("a record copied under another cache key is refused (the key is associated data)", async () => {
    const { store } = setup();
    const cache = encryptedCache(store, { keys: [keyA] });
    await cache.set("alice", { who: "alice" });
    store.data.set("bob", store.data.get("alice")!);
    expect(await cache.get("bob")).toBeUndefined();
  });

  it("rotates keys: the first key encrypts, every key decrypts", async () => {
    const { store } = setup();
    await encryptedCache(store, { keys: [keyA] }).set("old", { v: "old" });
    const rotated = encryptedCache(store, { keys: [keyB, keyA] });
    expect(await rotated.get("old")).toEqual({ v: "old" });
    await rotated.set("new", { v: "new" });
    expect(await encryptedCache(store, { keys: [keyB] }).get("new")).toEqual({ v: "new" });
    expect(await encryptedCache(store, { keys: [keyA] }).get("new")).toBeUndefined();
  });

  it("a plaintext value in the store is a miss", async () => {
    const { store } = setup();
    await store.set("k", { v: 1, accessKeyId: "A", secretAccessKey: "B", cachedAt: 1 });
    expect(await encryptedCache(store, { keys: [keyA] }).get("k")).toBeUndefined();
  });

  it("rejects keys of the wrong size with a message that says how to make one", () => {
    const { store } = setup();
    expect(() => encryptedCache(store, { keys: ["too-short"] })).toThrow(CacheConfigError);
    expect(() => encryptedCache(store, { keys: ["too-short"] })).toThrow(/32/);
    expect(() => encryptedCache(store, { keys: [] })).toThrow(/at least one/);
  });

  it("works under fromCache: credentials resolve and a new process reads them back", async () => {
    const { store, clock } = setup();
    const source = scriptedSource(clock);
    const cache = encryptedCache(store, { keys: [keyA] });
    const first = await fromCache({ provider: source.provider, cache, clock, proactiveRefresh: false })();
    const rec = recorder();
    const second = await fromCache({
      provider: source.provider,
      cache,
      clock,
      onEvent: rec.onEvent,
      proactiveRefresh: false,
    })();
    expect(second.accessKeyId).toBe(first.accessKeyId);
    expect(source.state.calls).toBe(1);
    expect(rec.of("hit")[0]).toMatchObject({ layer: "l2" });
  });
});
