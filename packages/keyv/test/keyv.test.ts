import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CacheArgumentError,
  CacheConfigError,
  CacheRecordError,
  CacheUnavailableError,
} from "@credcache/core";
import KeyvSqlite from "@keyv/sqlite";
import { Keyv } from "keyv";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createRedisCache, keyvCache, type LockProvider, redisLock } from "../src/index.js";
import { countedProvider } from "./fixtures/countedProvider.mjs";

let dir: string;
const opened: Keyv[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "credcache-keyv-"));
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((keyv) => keyv.disconnect()));
  await rm(dir, { recursive: true, force: true });
});

/** A Keyv on a real SQLite file in this test's temp dir. */
function sqliteKeyv(options: { namespace?: string; file?: string } = {}): Keyv {
  const keyv = new Keyv({
    store: new KeyvSqlite(`sqlite://${join(dir, options.file ?? "keyv.db")}`),
    throwOnErrors: true,
    ...(options.namespace !== undefined && { namespace: options.namespace }),
  });
  opened.push(keyv);
  return keyv;
}

describe("keyvCache on @keyv/sqlite", () => {
  it("writes through Keyv: another Keyv on the same file reads the value", async () => {
    const store = keyvCache(sqliteKeyv());
    await store.set("sts:role", { v: 1, expiration: 1_700_000_000_000 }, 60);
    const other = keyvCache(sqliteKeyv());
    expect(await other.get("sts:role")).toEqual({ v: 1, expiration: 1_700_000_000_000 });
  });

  it("stores plain JSON under the key Keyv itself would use", async () => {
    const keyv = sqliteKeyv();
    await keyvCache(keyv).set("k", { n: 1 }, 60);
    expect(await keyv.get("k")).toEqual({ n: 1 });
    const raw = (await keyv.store.get("keyv:k")) as string;
    const parsed = JSON.parse(raw) as { value: unknown; expires: unknown };
    expect(parsed.value).toEqual({ n: 1 });
    expect(typeof parsed.expires).toBe("number");
  });

  it("keeps keys that start with Keyv's own namespace apart from the rest", async () => {
    const store = keyvCache(sqliteKeyv());
    await store.set("x", "plain");
    await store.set("keyv:x", "prefixed");
    expect(await store.get("x")).toBe("plain");
    expect(await store.get("keyv:x")).toBe("prefixed");
    await store.remove("keyv:x");
    expect(await store.get("x")).toBe("plain");
  });

  it("namespaces isolate stores sharing one Keyv, and lock keys carry the namespace", async () => {
    const keyv = sqliteKeyv();
    const acquired: string[] = [];
    const lock: LockProvider = {
      acquire: async (key) => {
        acquired.push(key);
        return { release: async () => {} };
      },
    };
    const a = keyvCache(keyv, { namespace: "a", lock });
    const b = keyvCache(keyv, { namespace: "b", lock });
    const none = keyvCache(keyv);
    await a.set("k", "from a");
    expect(await b.get("k")).toBeUndefined();
    expect(await none.get("k")).toBeUndefined();
    expect(await none.get("a:k")).toBe("from a");
    await b.set("k", "from b");
    expect(await a.get("k")).toBe("from a");
    await a.remove("k");
    expect(await b.get("k")).toBe("from b");
    await a.acquireLock!("k", { ttlMs: 1_000 });
    await b.acquireLock!("k", { ttlMs: 1_000 });
    expect(acquired).toEqual(["a:k", "b:k"]);
  });

  it("converts TTL seconds to Keyv milliseconds; 0 and undefined mean no expiry", async () => {
    const keyv = sqliteKeyv();
    const store = keyvCache(keyv);
    const before = Date.now();
    await store.set("ttl", 1, 120);
    await store.set("fraction", 1, 0.0001);
    await store.set("zero", 1, 0);
    await store.set("none", 1);
    const expires = async (key: string) =>
      (JSON.parse((await keyv.store.get(`keyv:${key}`)) as string) as { expires?: number }).expires;
    const ttlExpires = (await expires("ttl"))!;
    expect(ttlExpires).toBeGreaterThanOrEqual(before + 120_000);
    expect(ttlExpires).toBeLessThanOrEqual(Date.now() + 120_000);
    // A tiny TTL still expires (rounded up to 1 ms), it never turns into "no expiry".
    expect(await expires("fraction")).toBeTypeOf("number");
    expect(await expires("zero")).toBeUndefined();
    expect(await expires("none")).toBeUndefined();
  });

  it("has acquireLock only when given a lock provider", () => {
    expect(keyvCache(sqliteKeyv()).acquireLock).toBeUndefined();
    const lock: LockProvider = { acquire: async () => undefined };
    expect(keyvCache(sqliteKeyv(), { lock }).acquireLock).toBeTypeOf("function");
  });
});

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const sorted = (keys: string[]) => [...keys].sort();

describe("keyvCache: keys()", () => {
  it("lists this store's unexpired keys, without Keyv's namespace or its own", async () => {
    const keyv = sqliteKeyv();
    const a = keyvCache(keyv, { namespace: "a" });
    const b = keyvCache(keyv, { namespace: "b" });
    const none = keyvCache(keyv);
    const live = ["plain", "ключ/🔑/../x", "sts:arn:aws:iam::123456789012:role/x", "a:b"];
    for (const key of live) await a.set(key, { key }, 60);
    await a.set("forever", 1);
    await a.set("removed", 1);
    await a.remove("removed");
    await a.set("short", 1, 0.05);
    await b.set("only-in-b", 1);
    await none.set("unnamespaced", 1);
    await sleep(100);
    expect(sorted(await a.keys!())).toEqual(sorted([...live, "forever"]));
    expect(await b.keys!()).toEqual(["only-in-b"]);
    // Without a namespace a store sees every key of its Keyv, each as its own get() would take it.
    const all = await none.keys!();
    expect(sorted(all)).toEqual(
      sorted([...live.map((k) => `a:${k}`), "a:forever", "b:only-in-b", "unnamespaced"]),
    );
    for (const key of all) expect(await none.get(key)).toBeDefined();
  });

  it("lists every live entry even where Keyv's own iterator() would skip or throw", async () => {
    const keyv = sqliteKeyv();
    const store = keyvCache(keyv);
    // @keyv/sqlite pages by 10 with LIMIT/OFFSET; deleting expired entries while listing
    // (as Keyv's iterator() does) shifts later pages and hides live entries.
    for (let i = 0; i < 12; i++) await store.set(`expired-${i}`, i, 0.05);
    for (let i = 0; i < 12; i++) await store.set(`live-${i}`, i, 60);
    // Rows Keyv did not write: not JSON, JSON null, JSON without a value.
    await keyv.store.set("keyv:garbage", "{not json");
    await keyv.store.set("keyv:null", "null");
    await keyv.store.set("keyv:no-value", JSON.stringify({ expires: null }));
    await sleep(100);
    expect(sorted(await store.keys!())).toEqual(sorted(Array.from({ length: 12 }, (_, i) => `live-${i}`)));
    expect(await store.get("live-0"), "listing changed nothing").toBe(0);
  });

  it("takes keys whole when neither Keyv nor the store has a namespace", async () => {
    const keyv = new Keyv({
      store: new KeyvSqlite(`sqlite://${join(dir, "bare.db")}`),
      namespace: undefined,
      throwOnErrors: true,
    });
    opened.push(keyv);
    const store = keyvCache(keyv);
    await store.set("x:y:z", 1);
    await store.set("plain", 2);
    expect(sorted(await store.keys!())).toEqual(["plain", "x:y:z"]);
  });

  it("lists a Map store's keys, with or without Keyv's key prefix", async () => {
    const prefixed = keyvCache(new Keyv(), { namespace: "ns" });
    await prefixed.set("k1", 1);
    await prefixed.set("k2", 2, 60);
    expect(sorted(await prefixed.keys!())).toEqual(["k1", "k2"]);
    const unprefixed = keyvCache(new Keyv({ useKeyPrefix: false }), { namespace: "ns" });
    await unprefixed.set("k", 1);
    expect(await unprefixed.keys!()).toEqual(["k"]);
  });

  it("never lists what a lock provider writes into the same store", async () => {
    const keyv = new Keyv({ useKeyPrefix: false });
    const adapter = keyv.store as Map<string, unknown>;
    // What redisLock writes when it shares the keyspace: a bare token under credcache:lock:...
    const lock: LockProvider = {
      acquire: async (key) => {
        adapter.set(`credcache:lock:${key}`, `${process.pid}:token`);
        return { release: async () => {} };
      },
    };
    const store = keyvCache(keyv, { lock });
    await store.set("k", 1);
    await store.acquireLock!("k", { ttlMs: 1_000 });
    await store.acquireLock!("locked-only", { ttlMs: 1_000 });
    // Even a lock entry that looks like a Keyv entry is left out.
    adapter.set("credcache:lock:fake", JSON.stringify({ value: "token" }));
    expect(await store.keys!()).toEqual(["k"]);
  });

  it("has no keys at all when the Keyv store cannot be iterated", () => {
    const adapter = {
      data: new Map<string, unknown>(),
      async get(key: string) {
        return this.data.get(key);
      },
      async set(key: string, value: unknown) {
        this.data.set(key, value);
        return true;
      },
      async delete(key: string) {
        return this.data.delete(key);
      },
      async clear() {
        this.data.clear();
      },
    };
    const store = keyvCache(new Keyv({ store: adapter }));
    expect("keys" in store).toBe(false);
    expect(typeof store.keys).toBe("undefined");
    expect(typeof keyvCache(sqliteKeyv()).keys).toBe("function");
  });
});

describe("keyvCache: stored values that are not Keyv entries", () => {
  const SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

  it.each([
    ["{}", "{}", "not-an-envelope"],
    ["[]", "[]", "not-an-envelope"],
    ["-1", "-1", "not-an-envelope"],
    ["1e999 (Infinity)", "1e999", "not-an-envelope"],
    ["a string", JSON.stringify(SECRET), "not-an-envelope"],
    ["an object without value", JSON.stringify({ a: { secretAccessKey: SECRET } }), "not-an-envelope"],
    ["an entry with a string expires", JSON.stringify({ value: SECRET, expires: "soon" }), "not-an-envelope"],
    ["not JSON", `{"secretAccessKey":"${SECRET}"`, "unparseable"],
  ])(
    "%s: removed, and get rejects with CacheRecordError that never quotes it",
    async (_label, stored, reason) => {
      const keyv = sqliteKeyv();
      const store = keyvCache(keyv);
      await keyv.store.set("keyv:k", stored);
      const error = await store.get("k").catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CacheRecordError);
      expect(error).toMatchObject({ code: "ERR_CREDCACHE_RECORD", reason });
      expect((error as Error).message).toContain('"keyv:k"');
      expect((error as Error).message).not.toContain(SECRET);
      expect(await keyv.store.get("keyv:k"), "the value is gone").toBeUndefined();
      expect(await store.get("k"), "the next read is a plain miss").toBeUndefined();
    },
  );

  it("the same on a Map store, with a namespace", async () => {
    const keyv = new Keyv();
    const store = keyvCache(keyv, { namespace: "ns" });
    const map = keyv.store as Map<string, unknown>;
    map.set("keyv:ns:k", "{}");
    await expect(store.get("k")).rejects.toMatchObject({ reason: "not-an-envelope" });
    expect(map.has("keyv:ns:k")).toBe(false);
  });

  it("valid entries, JSON null, expired entries and missing keys are not errors", async () => {
    const keyv = sqliteKeyv();
    const store = keyvCache(keyv);
    await store.set("falsy", 0);
    await store.set("null", null);
    await store.set("short", 1, 0.05);
    await keyv.store.set("keyv:json-null", "null");
    await keyv.store.set("keyv:null-expires", JSON.stringify({ value: "v", expires: null }));
    await sleep(100);
    expect(await store.get("falsy")).toBe(0);
    expect(await store.get("null")).toBeNull();
    expect(await store.get("short")).toBeUndefined();
    expect(await store.get("json-null")).toBeUndefined();
    expect(await store.get("null-expires")).toBe("v");
    expect(await store.get("missing")).toBeUndefined();
  });

  it("a hit reads the store once", async () => {
    const keyv = sqliteKeyv();
    const store = keyvCache(keyv);
    await store.set("k", { v: 1 }, 60);
    const adapter = keyv.store as { get(key: string): Promise<unknown> };
    const get = adapter.get.bind(adapter);
    const reads: string[] = [];
    adapter.get = async (key: string) => {
      reads.push(key);
      return get(key);
    };
    expect(await store.get("k")).toEqual({ v: 1 });
    expect(reads).toEqual(["keyv:k"]);
  });

  it("a failing store stays a store error, not a broken record", async () => {
    const failing = Object.assign(new Map<string, unknown>(), {
      get: () => {
        throw new Error("connection reset");
      },
    });
    const store = keyvCache(new Keyv({ store: failing, throwOnErrors: true }));
    const error = await store.get("k").catch((e: unknown) => e);
    expect(error).not.toBeInstanceOf(CacheRecordError);
    expect((error as Error).message).toBe("connection reset");
  });

  it("a Keyv-like without deserializeData is read as before: its get() is the value", async () => {
    const data = new Map<string, unknown>([["k", { v: 1 }]]);
    const keyvLike = {
      get: async (key: string) => data.get(key),
      set: async (key: string, value: unknown) => {
        data.set(key, value);
        return true;
      },
      delete: async (key: string) => data.delete(key),
    };
    const store = keyvCache(keyvLike);
    expect(await store.get("k")).toEqual({ v: 1 });
    expect(data.has("k")).toBe(true);
  });

  it("rejects undefined, functions and symbols as values instead of storing an empty entry", async () => {
    const keyv = sqliteKeyv();
    const store = keyvCache(keyv);
    for (const value of [undefined, () => 1, Symbol("s")]) {
      await expect(store.set("k", value)).rejects.toBeInstanceOf(CacheArgumentError);
    }
    expect(await keyv.store.get("keyv:k")).toBeUndefined();
  });

  it("fromCache reports a broken value as record-rejected and refills it from the source", async () => {
    const keyv = sqliteKeyv();
    const store = keyvCache(keyv);
    await keyv.store.set("keyv:creds", JSON.stringify({ accessKeyId: "AKIA", secretAccessKey: SECRET }));
    const { provider, events, sourceCalls } = countedProvider({
      cache: store,
      key: "creds",
      credentials: () => ({ accessKeyId: "ASIAKEYVTEST00000001", secretAccessKey: "s" }),
    });
    try {
      expect((await provider()).accessKeyId).toBe("ASIAKEYVTEST00000001");
    } finally {
      await provider.close();
    }
    expect(sourceCalls()).toBe(1);
    expect(events).toContainEqual(
      expect.objectContaining({ type: "record-rejected", reason: "not-an-envelope" }),
    );
    expect(events.filter((event) => event.type === "cache-error")).toEqual([]);
    expect(JSON.stringify(events)).not.toContain(SECRET);
    expect(await store.get("creds"), "the source's answer was stored").toMatchObject({
      accessKeyId: "ASIAKEYVTEST00000001",
    });
  });
});

/** An object JSON.stringify throws on. */
function circular(): object {
  const value: { self?: unknown } = {};
  value.self = value;
  return value;
}

describe("keyvCache: bad input and failing stores", () => {
  it("describes options JSON.stringify cannot show (BigInt, cycles) in a CacheConfigError", () => {
    const keyv = new Keyv();
    expect(() => keyvCache(keyv, { namespace: 1n as never })).toThrow(/"namespace" must be .*got 1n/);
    expect(() => keyvCache(keyv, { namespace: circular() as never })).toThrow(CacheConfigError);
    expect(() => redisLock({} as never, { namespace: 1n as never })).toThrow(CacheConfigError);
    expect(() => redisLock({} as never, { namespace: circular() as never })).toThrow(/got an object/);
    const long = Symbol("x".repeat(10_000));
    const error = (() => {
      try {
        redisLock({} as never, { namespace: long as never });
      } catch (caught) {
        return caught as Error;
      }
    })();
    expect(error).toBeInstanceOf(CacheConfigError);
    expect(error!.message.length, "a long value is cut short").toBeLessThan(200);
  });

  it("rejects something that is not a Keyv, and malformed options, with CacheConfigError", () => {
    for (const keyv of [undefined, null, {}, "redis://x", { get() {}, set() {} }]) {
      expect(() => keyvCache(keyv as never)).toThrow(CacheConfigError);
    }
    const keyv = new Keyv();
    expect(() => keyvCache(keyv, { namespace: "" })).toThrow(CacheConfigError);
    expect(() => keyvCache(keyv, { lock: {} as never })).toThrow(/acquire\(key, ttlMs\)/);
  });

  it("rejects bad keys, TTLs and lock TTLs with CacheArgumentError", async () => {
    const store = keyvCache(new Keyv(), { lock: { acquire: async () => undefined } });
    for (const call of [
      () => store.get(""),
      () => store.set("k", 1, -5),
      () => store.set("k", 1, Number.POSITIVE_INFINITY),
      () => store.remove(""),
      () => store.acquireLock!("k", { ttlMs: 0 }),
    ]) {
      await expect(call()).rejects.toBeInstanceOf(CacheArgumentError);
    }
  });

  it("turns a write that Keyv swallowed into CacheUnavailableError", async () => {
    // A Keyv without throwOnErrors reports a failed write only through its return value.
    const broken = new Map<string, unknown>();
    const failing = Object.assign(broken, {
      set: () => {
        throw new Error("disk full");
      },
    });
    const store = keyvCache(new Keyv({ store: failing }));
    await expect(store.set("k", 1)).rejects.toBeInstanceOf(CacheUnavailableError);
  });
});

describe("createRedisCache: configuration", () => {
  it("rejects malformed options without echoing a password", async () => {
    const attempts: Array<[unknown, RegExp]> = [
      [undefined, /pass options/],
      [{ url: "http://user:hunter2pw@example.com" }, /redis:\/\/ or rediss:\/\//],
      [{ url: "redis://user:hunter2pw@[bad" }, /redis:\/\/ or rediss:\/\//],
      [{ url: 6379 }, /got number/],
      [{ url: "redis://127.0.0.1:6379", namespace: "" }, /"namespace"/],
      [{ url: "redis://127.0.0.1:6379", lock: "yes" }, /"lock" must be true or false/],
      [{ url: "redis://127.0.0.1:6379", connectTimeoutMs: 0 }, /"connectTimeoutMs"/],
      // What node-redis rejects only inside new KeyvRedis, with a bare TypeError or URIError.
      [{ url: "redis://user:hunter2pw@127.0.0.1:6379/0%zz" }, /path of "url" must be a database number/],
      [{ url: "redis://user:hunter2pw@127.0.0.1:6379/abc" }, /path of "url" must be a database number/],
      [{ url: "redis://user:hunter2pw@127.0.0.1:6379/1.5" }, /path of "url" must be a database number/],
      [{ url: "redis://user:hunter2pw@127.0.0.1:6379/0/1" }, /path of "url" must be a database number/],
      [{ url: "redis://user:hunter2pw%zz@127.0.0.1:6379/0" }, /must be percent-encoded/],
      [{ url: "rediss://default:hunter2pw@" }, /does not parse/],
      [{ url: "redis://" }, /must name a host/],
      // An unencoded "#", "?", "/" or "@" in the password: where the user info ends is a guess.
      [{ url: "redis://user:hunter2pw#x@127.0.0.1:6379/0" }, /does not parse.*%23/],
      [{ url: "redis://user:hunter2pw?x@127.0.0.1:6379/0" }, /does not parse/],
      [{ url: "redis://user:123/hunter2pw@127.0.0.1:6379/0" }, /must be percent-encoded/],
      // These parse, as host "hunter2pw" or "user": node-redis would look the password up as a host.
      [{ url: "redis://hunter2pw#x@127.0.0.1:6379" }, /must be percent-encoded.*%23/],
      [{ url: "redis://hunter2pw?x@127.0.0.1:6379" }, /must be percent-encoded.*%3F/],
      [{ url: "redis://user:123?hunter2pw@127.0.0.1:6379" }, /must be percent-encoded/],
      [{ url: "redis://user:hunter2pw@x@127.0.0.1:6379/zz" }, /got "redis:\/\/\*\*\*@127\.0\.0\.1:6379\/zz"/],
      // Values JSON.stringify throws on: still a CacheConfigError, not a raw TypeError.
      [{ url: "redis://127.0.0.1:6379", namespace: 1n }, /"namespace" must be a non-empty string, got 1n/],
      [{ url: "redis://127.0.0.1:6379", lock: circular() }, /"lock" must be true or false, got an object/],
      [{ url: "redis://127.0.0.1:6379", connectTimeoutMs: 10n }, /"connectTimeoutMs".*got 10n/],
    ];
    for (const [options, message] of attempts) {
      const error = await createRedisCache(options as never).then(
        () => undefined,
        (caught: unknown) => caught as Error,
      );
      expect(error).toBeInstanceOf(CacheConfigError);
      expect(error!.message).toMatch(message);
      expect(error!.message).not.toContain("hunter2pw");
      expect(String((error as Error & { cause?: unknown }).cause ?? "")).not.toContain("hunter2pw");
    }
  });

  it("accepts a database number in the path, or none", async () => {
    for (const url of ["redis://127.0.0.1:6379", "redis://127.0.0.1:6379/", "redis://127.0.0.1:6379/15"]) {
      const store = await createRedisCache({ url, namespace: "config-only" });
      await store.close?.(); // nothing connected: construction only
    }
  });
});
