import { randomUUID } from "node:crypto";
import {
  type AwsCredentialIdentity,
  CacheConfigError,
  type CacheEvent,
  type CredentialCache,
  fromCache,
} from "@credcache/core";
import KeyvRedis from "@keyv/redis";
import { Keyv } from "keyv";
import { expect, it } from "vitest";
import { createRedisCache, type IoRedisClient, keyvCache, redisLock } from "../src/index.js";
import {
  describeWithRedis,
  freePort,
  type RawRedis,
  REDIS_URL,
  rawRedis,
  redisProxy,
  useTestRedis,
} from "./redis.js";

const RUN = `cc-keyv-test-${randomUUID().slice(0, 8)}`;

function credentials(id = "ASIAREDISTEST0000001"): AwsCredentialIdentity {
  return {
    accessKeyId: id,
    secretAccessKey: `redis-secret-${randomUUID()}`,
    sessionToken: `redis-token-${randomUUID()}`,
    expiration: new Date(Date.now() + 3_600_000),
  };
}

/** An ioredis-shaped client (`set(k, v, "PX", ms, "NX")`, `eval(script, 1, k, v)`) over node-redis. */
function ioredisShaped(client: RawRedis): IoRedisClient {
  return {
    status: "ready",
    set: (key, value, px, ttlMs, nx) => client.sendCommand(["SET", key, value, px, String(ttlMs), nx]),
    eval: (script, numKeys, ...args) => client.sendCommand(["EVAL", script, String(numKeys), ...args]),
  };
}

describeWithRedis("Redis stores: createRedisCache, keyvCache on @keyv/redis, redisLock (real Redis)", () => {
  const redis = useTestRedis(RUN);
  const { stores } = redis;

  async function redisStore(namespace: string, lock = true): Promise<CredentialCache> {
    const store = await createRedisCache({ url: REDIS_URL, namespace: `${RUN}-${namespace}`, lock });
    stores.push(store);
    return store;
  }

  it("stores a record as plain JSON: numbers for times, no Date, under <namespace>::{<key>}", async () => {
    const store = await redisStore("json");
    const record = {
      v: 1,
      accessKeyId: "ASIAREDISTEST0000001",
      secretAccessKey: "s",
      expiration: 1_700_003_600_000,
      cachedAt: 1_700_000_000_000,
    };
    await store.set("sts:arn:aws:iam::123456789012:role/x:credcache", record, 3_600);
    const text = await redis.raw.get(`${RUN}-json::{sts:arn:aws:iam::123456789012:role/x:credcache}`);
    expect(text).toBeTypeOf("string");
    const parsed = JSON.parse(text!) as { value: Record<string, unknown>; expires: unknown };
    expect(parsed.value).toEqual(record);
    expect(parsed.value.expiration).toBeTypeOf("number");
    expect(parsed.value.cachedAt).toBeTypeOf("number");
    expect(typeof parsed.expires).toBe("number");
    expect(await store.get("sts:arn:aws:iam::123456789012:role/x:credcache")).toEqual(record);
  });

  it("turns TTL seconds into a Redis PTTL in milliseconds; 0 and undefined mean no expiry", async () => {
    const store = await redisStore("ttl");
    const key = (name: string) => `${RUN}-ttl::{${name}}`;
    await store.set("two-minutes", 1, 120);
    await store.set("fraction", 1, 1.5);
    await store.set("sub-millisecond", 1, 1.0005); // PX takes whole milliseconds only
    await store.set("zero", 1, 0);
    await store.set("none", 1);
    const twoMinutes = await redis.raw.pTTL(key("two-minutes"));
    expect(twoMinutes).toBeGreaterThan(110_000);
    expect(twoMinutes).toBeLessThanOrEqual(120_000);
    const fraction = await redis.raw.pTTL(key("fraction"));
    expect(fraction).toBeGreaterThan(1_000);
    expect(fraction).toBeLessThanOrEqual(1_500);
    const subMillisecond = await redis.raw.pTTL(key("sub-millisecond"));
    expect(subMillisecond).toBeGreaterThan(500);
    expect(subMillisecond).toBeLessThanOrEqual(1_001);
    expect(await redis.raw.pTTL(key("zero"))).toBe(-1);
    expect(await redis.raw.pTTL(key("none"))).toBe(-1);
  });

  it("isolates namespaces: values and locks", async () => {
    const a = await redisStore("ns-a");
    const b = await redisStore("ns-b");
    await a.set("k", "from a");
    expect(await b.get("k")).toBeUndefined();
    await b.set("k", "from b");
    expect(await a.get("k")).toBe("from a");
    const lockA = await a.acquireLock!("k", { ttlMs: 10_000 });
    expect(lockA).toBeDefined();
    expect(await redis.raw.exists(`credcache:lock:${RUN}-ns-a:{k}`)).toBe(1);
    const lockB = await b.acquireLock!("k", { ttlMs: 10_000 });
    expect(lockB, "the same key in another namespace").toBeDefined();
    await lockA!.release();
    await lockB!.release();
    expect(await redis.raw.exists(`credcache:lock:${RUN}-ns-a:{k}`)).toBe(0);
  });

  it('namespace "X" with key ":k" and namespace "X:" with key "k" never share an entry: ":" is refused in namespaces (issue 12)', async () => {
    const x = await redisStore("x");
    await x.set(":k", "from X", 60);
    const raw = await rawRedis();
    try {
      expect(await raw.exists(`${RUN}-x::{:k}`)).toBe(1);
    } finally {
      await raw.destroy();
    }
    // The namespace that would read that entry back under the key "k" is refused, everywhere a namespace goes in.
    await expect(createRedisCache({ url: REDIS_URL, namespace: `${RUN}-x:` })).rejects.toThrow(
      CacheConfigError,
    );
    await expect(createRedisCache({ url: REDIS_URL, namespace: `${RUN}-x:` })).rejects.toThrow(
      /must not contain ":"/,
    );
    const keyv = new Keyv({ store: new Map() });
    expect(() => keyvCache(keyv, { namespace: "a:" })).toThrow(CacheConfigError);
    expect(() => redisLock(() => raw as never, { namespace: "a:b" })).toThrow(/must not contain ":"/);
    expect(await x.get(":k")).toBe("from X");
  });

  it("has no acquireLock with lock: false", async () => {
    expect((await redisStore("nolock", false)).acquireLock).toBeUndefined();
  });

  it("fails fast while Redis is away and reconnects on a later call, with no retry loop in between", async () => {
    const proxy = await redisProxy();
    try {
      const store = await createRedisCache({
        url: `redis://127.0.0.1:${proxy.port}`,
        namespace: `${RUN}-proxy`,
      });
      stores.push(store);
      await store.set("k", "before");
      expect(proxy.connections()).toBe(1);
      proxy.down();
      await expect(store.get("k")).rejects.toThrow();
      await expect(store.get("k")).rejects.toThrow();
      proxy.up();
      expect(await store.get("k")).toBe("before");
      expect(await store.acquireLock!("k", { ttlMs: 10_000 })).toBeDefined();
      expect(proxy.connections(), "one new connection, opened by the call after Redis came back").toBe(2);
    } finally {
      await proxy.close();
    }
  });

  for (const [shape, client] of [
    ["node-redis", () => redis.raw],
    ["ioredis-shaped", () => ioredisShaped(redis.raw)],
  ] as const) {
    it(`redisLock (${shape}): SET NX PX to take, compare-and-delete to release`, async () => {
      const lock = redisLock(client(), { namespace: `${RUN}-lock-${shape}` });
      const lockKey = `credcache:lock:${RUN}-lock-${shape}:k`;
      const first = await lock.acquire("k", 10_000);
      expect(first).toBeDefined();
      const pttl = await redis.raw.pTTL(lockKey);
      expect(pttl).toBeGreaterThan(9_000);
      expect(pttl).toBeLessThanOrEqual(10_000);
      expect(await lock.acquire("k", 10_000)).toBeUndefined();
      await first!.release();
      expect(await redis.raw.exists(lockKey)).toBe(0);

      // A holder whose lease ran out releases after someone else took over: the new holder keeps the lock.
      const stale = await lock.acquire("k", 50);
      expect(stale).toBeDefined();
      while ((await redis.raw.exists(lockKey)) === 1) await new Promise((resolve) => setTimeout(resolve, 20));
      const current = await lock.acquire("k", 10_000);
      expect(current, "taken over after the lease ran out").toBeDefined();
      const currentToken = await redis.raw.get(lockKey);
      await stale!.release();
      expect(await redis.raw.get(lockKey), "the stale release left the new holder's token").toBe(
        currentToken,
      );
      expect(await lock.acquire("k", 10_000)).toBeUndefined();
      await current!.release();
      await current!.release();
      expect(await redis.raw.exists(lockKey)).toBe(0);
    });
  }

  it("redisLock refuses a client it cannot drive", () => {
    for (const client of [{}, null, { set() {}, eval() {} }, { isOpen: true, set() {} }]) {
      expect(() => redisLock(client as never)).toThrow(/pass a node-redis \(v4\/v5\) or ioredis client/);
    }
  });

  it("keyvCache + redisLock on a caller's own Keyv and KeyvRedis", async () => {
    const keyvRedis = new KeyvRedis(REDIS_URL, { throwOnErrors: true });
    const keyv = new Keyv({
      store: keyvRedis,
      namespace: `${RUN}-own`,
      useKeyPrefix: false,
      throwOnErrors: true,
    });
    try {
      const store = keyvCache(keyv, {
        lock: redisLock(() => keyvRedis.getClient()),
      });
      await store.set("k", { own: true }, 60);
      expect(await store.get("k")).toEqual({ own: true });
      const held = await store.acquireLock!("k", { ttlMs: 10_000 });
      expect(held).toBeDefined();
      expect(await redis.raw.exists("credcache:lock:k")).toBe(1);
      await held!.release();
    } finally {
      await keyv.disconnect();
    }
  });

  it("keys(): this namespace's unexpired keys, by SCAN; never lock keys or other namespaces", async () => {
    const store = await redisStore("keys");
    const other = await redisStore("keys-other");
    const live = ["plain", "ключ/🔑/../x", "sts:arn:aws:iam::123456789012:role/x", "with::double-colons"];
    for (const key of live) await store.set(key, { key }, 60);
    await store.set("forever", 1);
    await store.set("removed", 1);
    await store.remove("removed");
    await store.set("short", 1, 0.3);
    await other.set("elsewhere", 1);
    const held = await store.acquireLock!("plain", { ttlMs: 10_000 });
    await store.acquireLock!("locked-only", { ttlMs: 10_000 });
    expect(held).toBeDefined();
    expect(await redis.raw.exists(`credcache:lock:${RUN}-keys:{locked-only}`)).toBe(1);
    // A key Keyv did not write, in this namespace: not an entry; nor is a name without a hash tag.
    await redis.raw.set(`${RUN}-keys::{foreign}`, "not json");
    await redis.raw.set(`${RUN}-keys::untagged`, JSON.stringify({ value: 1 }));
    const expected = [...live, "forever"].sort();
    const deadline = Date.now() + 3_000;
    let listed = (await store.keys!()).sort();
    // Redis expires the 0.3 s entry on its own clock: poll instead of betting on one wait.
    while (listed.includes("short") && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      listed = (await store.keys!()).sort();
    }
    expect(listed).toEqual(expected);
    expect(await other.keys!()).toEqual(["elsewhere"]);
    await held!.release();
  });

  it("keys() on a Keyv and KeyvRedis without namespaces: the whole database, lock keys left out", async () => {
    const keyvRedis = new KeyvRedis(REDIS_URL, { throwOnErrors: true });
    const keyv = new Keyv({
      store: keyvRedis,
      namespace: undefined,
      useKeyPrefix: false,
      throwOnErrors: true,
    });
    try {
      const store = keyvCache(keyv, { lock: redisLock(() => keyvRedis.getClient()) });
      const key = `${RUN}-bare:k`;
      await store.set(key, 1, 60);
      const held = await store.acquireLock!(key, { ttlMs: 10_000 });
      expect(await redis.raw.exists(`credcache:lock:${key}`)).toBe(1);
      // Other users of this Redis may hold keys too: look at this run's only.
      const listed = (await store.keys!()).filter((k) => k.includes(RUN));
      expect(listed).toEqual([key]);
      await held!.release();
    } finally {
      await keyv.disconnect();
    }
  });

  it("a value in the namespace that is not a Keyv entry is removed and rejected, not a silent miss", async () => {
    const store = await redisStore("broken");
    const broken: Array<[string, string]> = [
      ["{}", "not-an-envelope"],
      ["[]", "not-an-envelope"],
      ["-1", "not-an-envelope"],
      ["1e999", "not-an-envelope"],
      ['{"a":{"secretAccessKey":"hunter2secret"}}', "not-an-envelope"],
      ['{"secretAccessKey":"hunter2secret"', "unparseable"],
    ];
    for (const [stored, reason] of broken) {
      await redis.raw.set(`${RUN}-broken::{k}`, stored);
      const error = await store.get("k").catch((e: unknown) => e);
      expect(error, stored).toMatchObject({ name: "CacheRecordError", reason });
      expect((error as Error).message).not.toContain("hunter2secret");
      expect(await redis.raw.exists(`${RUN}-broken::{k}`), stored).toBe(0);
    }
  });

  it("a hit is a single GET on the wire", async () => {
    const store = await redisStore("one-get");
    await store.set("k", { v: 1 }, 60);
    const key = `${RUN}-one-get::{k}`;
    const monitor = await rawRedis();
    const seen: string[] = [];
    await monitor.monitor((line) => seen.push(line));
    const sentinel = `${RUN}-one-get-sentinel`;
    try {
      expect(await store.get("k")).toEqual({ v: 1 });
      await redis.raw.get(sentinel);
      // MONITOR lines arrive in order: once the sentinel is seen, the hit's commands were too.
      while (!seen.some((line) => line.includes(sentinel))) await new Promise((r) => setTimeout(r, 10));
    } finally {
      monitor.destroy();
    }
    expect(seen.filter((line) => line.includes(key)).map((line) => line.split(" ")[3])).toEqual(['"GET"']);
  });

  it("fromCache shares one source call between processes' providers through Redis", async () => {
    const namespace = "shared";
    const sourceCalls: number[] = [];
    const provider = async () => {
      sourceCalls.push(Date.now());
      return credentials();
    };
    const providers = await Promise.all(
      Array.from({ length: 4 }, async () =>
        fromCache({ provider, cache: await redisStore(namespace), key: "sts:role", proactiveRefresh: false }),
      ),
    );
    const identities = await Promise.all(providers.map((resolve) => resolve()));
    expect(new Set(identities.map((identity) => identity.accessKeyId)).size).toBe(1);
    expect(sourceCalls).toHaveLength(1);
  });

  it("an unreachable Redis is a cache-error event; credentials still resolve and no password leaks", async () => {
    const port = await freePort();
    const store = await createRedisCache({ url: `redis://user:hunter2pw@127.0.0.1:${port}`, namespace: RUN });
    stores.push(store);
    const events: CacheEvent[] = [];
    const source = credentials("ASIAUNREACHABLE00001");
    const provider = fromCache({
      provider: async () => source,
      cache: store,
      key: "k",
      proactiveRefresh: false,
      onEvent: (event) => events.push(event),
    });
    const identity = await provider();
    expect(identity.accessKeyId).toBe("ASIAUNREACHABLE00001");
    const errors = events.filter((event) => event.type === "cache-error");
    expect(errors.map((event) => event.operation)).toContain("get");
    expect(errors.map((event) => event.error.code)).not.toContain("ERR_CREDCACHE_TIMEOUT");
    expect(JSON.stringify(events)).not.toContain("hunter2pw");
    // Each call fails on its own (no retry loop): a second resolution still works.
    provider.close();
  });
});
