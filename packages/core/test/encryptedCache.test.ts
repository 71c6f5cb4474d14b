import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { CacheConfigError, CacheRecordError, encryptedCache, fromCache } from "../src/index.js";
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

  it("a tampered record is refused loudly, and is a reported miss under fromCache", async () => {
    const { store } = setup();
    const rejected: string[] = [];
    const cache = encryptedCache(store, { keys: [keyA], onReject: (_k, reason) => rejected.push(reason) });
    await cache.set("k", { a: 1 });
    const sealed = JSON.parse(store.data.get("k")!.value);
    const ct = Buffer.from(sealed.ct, "base64");
    ct[0] = (ct[0] ?? 0) ^ 1;
    sealed.ct = ct.toString("base64");
    store.data.set("k", { value: JSON.stringify(sealed) });
    await expect(cache.get("k")).rejects.toBeInstanceOf(CacheRecordError);
    expect(rejected).toEqual(["authentication failed"]);
    // Under fromCache: a miss, reported, removed, and the source answers.
    const clock = testClock();
    const source = scriptedSource(clock);
    const rec = recorder();
    const got = await fromCache({
      provider: source.provider,
      cache,
      key: "k",
      clock,
      onEvent: rec.onEvent,
      proactiveRefresh: false,
    })();
    expect(got.accessKeyId).toMatch(/^ASIATEST/);
    expect(rec.of("record-rejected")[0]?.reason).toBe("authentication-failed");
    expect(rec.of("cache-error")).toHaveLength(0);
  });

  it("refuses truncated GCM tags (forgery would be cheap)", async () => {
    const { store } = setup();
    const cache = encryptedCache(store, { keys: [keyA] });
    await cache.set("k", { a: 1 });
    const sealed = JSON.parse(store.data.get("k")!.value);
    sealed.tag = Buffer.from(sealed.tag, "base64").subarray(0, 4).toString("base64");
    store.data.set("k", { value: JSON.stringify(sealed) });
    await expect(cache.get("k")).rejects.toThrow(/malformed envelope/);
  });

  it("a record copied under another cache key is refused (the key is associated data)", async () => {
    const { store } = setup();
    const cache = encryptedCache(store, { keys: [keyA] });
    await cache.set("alice", { who: "alice" });
    store.data.set("bob", store.data.get("alice")!);
    await expect(cache.get("bob")).rejects.toThrow(/authentication failed/);
  });

  it("rotates keys: the first key encrypts, every key decrypts", async () => {
    const { store } = setup();
    await encryptedCache(store, { keys: [keyA] }).set("old", { v: "old" });
    const rotated = encryptedCache(store, { keys: [keyB, keyA] });
    expect(await rotated.get("old")).toEqual({ v: "old" });
    await rotated.set("new", { v: "new" });
    expect(await encryptedCache(store, { keys: [keyB] }).get("new")).toEqual({ v: "new" });
    await expect(encryptedCache(store, { keys: [keyA] }).get("new")).rejects.toBeInstanceOf(CacheRecordError);
  });

  it("a plaintext value in the store is refused", async () => {
    const { store } = setup();
    await store.set("k", { v: 1, accessKeyId: "A", secretAccessKey: "B", cachedAt: 1 });
    await expect(encryptedCache(store, { keys: [keyA] }).get("k")).rejects.toThrow(/not an encrypted record/);
    await store.set("n", null);
    await expect(encryptedCache(store, { keys: [keyA] }).get("n")).rejects.toThrow(/not an encrypted record/);
  });

  it("rejects keys of the wrong size with a message that says how to make one", () => {
    const { store } = setup();
    expect(() => encryptedCache(store, { keys: ["too-short"] })).toThrow(CacheConfigError);
    expect(() => encryptedCache(store, { keys: ["too-short"] })).toThrow(/32 bytes/);
    expect(() => encryptedCache(store, { keys: [randomBytes(16)] })).toThrow(/16 bytes; AES-256 needs 32/);
    expect(() => encryptedCache(store, { keys: [] })).toThrow(/at least one/);
    expect(() => encryptedCache(store, { keys: [5 as never] })).toThrow(/must be a 32-byte Buffer/);
  });

  it("accepts only exactly 32 bytes as 44 canonical base64 or 64 hex characters (issue 12)", () => {
    const { store } = setup();
    const good = randomBytes(32);
    expect(() => encryptedCache(store, { keys: [good.toString("base64")] })).not.toThrow();
    expect(() => encryptedCache(store, { keys: [good.toString("hex")] })).not.toThrow();
    expect(() => encryptedCache(store, { keys: [good.toString("hex").toUpperCase()] })).not.toThrow();
    const lenient = [
      ` ${good.toString("base64")}`, // whitespace the decoder would skip
      good.toString("base64url"), // another alphabet
      `${good.toString("base64").slice(0, 43)}*`, // a stray character the decoder would drop
      good.toString("base64").replace(/=$/, ""), // unpadded
      `${good.toString("hex").slice(0, 63)}`, // 63 hex characters
      `${good.toString("base64")}AAAA`, // 35 bytes
    ];
    for (const key of lenient) {
      expect(() => encryptedCache(store, { keys: [key] }), key).toThrow(CacheConfigError);
      expect(() => encryptedCache(store, { keys: [key] }), key).toThrow(/44 base64 characters or 64 hex/);
    }
  });

  it("refuses weak keys: one repeated byte, printable text, few distinct bytes (issue 12)", () => {
    const { store } = setup();
    const weak: Array<[string | Uint8Array, RegExp]> = [
      [Buffer.alloc(32), /every byte is the same/],
      ["00".repeat(32), /every byte is the same/],
      [Buffer.alloc(32, 0xa1).toString("base64"), /every byte is the same/],
      [Buffer.from("correct horse battery staple 123"), /printable text/],
      [Buffer.from("correct horse battery staple 123").toString("base64"), /printable text/],
      [Buffer.from(Array.from({ length: 32 }, (_, i) => (i % 8) * 31)), /only 8 distinct byte values/],
    ];
    for (const [key, why] of weak) {
      expect(() => encryptedCache(store, { keys: [key] })).toThrow(CacheConfigError);
      expect(() => encryptedCache(store, { keys: [key] })).toThrow(why);
    }
  });

  it("a record copied to a store with another namespace is refused (staging to prod, same key; issue 12)", async () => {
    const { store: stagingInner } = setup();
    const { store: prodInner } = setup();
    const staging = encryptedCache(stagingInner, { keys: [keyA], namespace: "staging" });
    const prod = encryptedCache(prodInner, { keys: [keyA], namespace: "prod" });
    await staging.set("k", { secretAccessKey: "SECRETFIXTUREstaging" });
    await prodInner.set("k", JSON.parse(stagingInner.data.get("k")!.value));
    await expect(prod.get("k")).rejects.toThrow(/authentication failed/);
    // The same namespace opens it; without one, both sides use the default.
    await expect(encryptedCache(prodInner, { keys: [keyA], namespace: "staging" }).get("k")).resolves.toEqual(
      {
        secretAccessKey: "SECRETFIXTUREstaging",
      },
    );
    expect(() => encryptedCache(prodInner, { keys: [keyA], namespace: "" })).toThrow(CacheConfigError);
  });

  it("refuses records of the old format (the cache key alone as associated data): a miss, fetched again", async () => {
    const { store } = setup();
    const cache = encryptedCache(store, { keys: [keyA] });
    await cache.set("k", { a: 1 });
    const sealed = JSON.parse(store.data.get("k")!.value);
    expect(sealed.v).toBe(2);
    const { v: _v, ...old } = sealed;
    await store.set("k", old);
    await expect(cache.get("k")).rejects.toThrow(/old format/);
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
