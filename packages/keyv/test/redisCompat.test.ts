// A fleet mid-upgrade: some hosts on the Keyv-based Redis store (keyv + @keyv/redis, as
// createRedisCache was built before it had its own client, with hashTags as it keys now),
// some on the built-in client. They must share records and locks.
import { randomUUID } from "node:crypto";
import { type CredentialCache, fromCache } from "@credcache/core";
import KeyvRedis from "@keyv/redis";
import { Keyv } from "keyv";
import { expect, it } from "vitest";
import { createRedisCache, keyvCache, redisLock } from "../src/index.js";
import { describeWithRedis, REDIS_URL, runFixture, useTestRedis } from "./redis.js";

const RUN = `cc-compat-test-${randomUUID().slice(0, 8)}`;

/** The store the Keyv-based createRedisCache built, line for line. */
function keyvRedisStore(namespace: string): CredentialCache {
  const keyvRedis = new KeyvRedis(
    { url: REDIS_URL, socket: { connectTimeout: 1_000, reconnectStrategy: false } },
    { throwOnConnectError: true, throwOnErrors: true },
  );
  const keyv = new Keyv({ store: keyvRedis, namespace, useKeyPrefix: false, throwOnErrors: true });
  const store = keyvCache(keyv, {
    lock: redisLock(() => keyvRedis.getClient(), { namespace }),
    hashTags: true,
  });
  store.close = () => keyvRedis.disconnect();
  return store;
}

/** Values with what Keyv's serializer treats specially: strings starting with ":", unicode, nesting. */
const VALUES: unknown[] = [
  {
    v: 1,
    accessKeyId: "ASIACOMPATTEST000001",
    secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    sessionToken: "IQoJb3JpZ2luX2VjE+/=",
    expiration: 1_700_003_600_000,
    cachedAt: 1_700_000_000_000,
    source: "imds",
  },
  { a: ":colon", b: "::two", c: ":base64:aGk=", list: [":x", null, 1.5, true, { deep: ":d" }] },
  'ключ 🔑 \u2028 "quoted" \\',
  ":leading",
  0,
  [],
];

describeWithRedis("Keyv-based and built-in Redis stores side by side (real Redis)", () => {
  const redis = useTestRedis(RUN);
  const { stores } = redis;
  /** [Keyv-based, built-in] on one namespace. */
  async function pair(name: string): Promise<[CredentialCache, CredentialCache]> {
    const namespace = `${RUN}-${name}`;
    const both: [CredentialCache, CredentialCache] = [
      keyvRedisStore(namespace),
      await createRedisCache({ url: REDIS_URL, namespace }),
    ];
    stores.push(...both);
    return both;
  }

  it("write the same bytes under the same key; each reads what the other wrote", async () => {
    const [old, built] = await pair("bytes");
    for (const [i, value] of VALUES.entries()) {
      await old.set(`old:${i}`, value);
      await built.set(`new:${i}`, value);
      const oldText = await redis.raw.get(`${RUN}-bytes::{old:${i}}`);
      expect(oldText, `value ${i}`).toBeTypeOf("string");
      expect(await redis.raw.get(`${RUN}-bytes::{new:${i}}`), `value ${i}`).toBe(oldText);
      expect(await built.get(`old:${i}`), `value ${i}`).toEqual(value);
      expect(await old.get(`new:${i}`), `value ${i}`).toEqual(value);
    }
  });

  it("write the same envelope and Redis TTL for a TTL; remove works across", async () => {
    const [old, built] = await pair("ttl");
    await old.set("old", VALUES[0], 120);
    await built.set("new", VALUES[0], 120);
    for (const name of ["old", "new"]) {
      const key = `${RUN}-ttl::{${name}}`;
      const envelope = JSON.parse((await redis.raw.get(key))!) as Record<string, unknown>;
      expect(Object.keys(envelope), name).toEqual(["value", "expires"]);
      expect(envelope.expires, name).toBeGreaterThan(Date.now() + 100_000);
      expect(envelope.expires, name).toBeLessThanOrEqual(Date.now() + 120_000);
      const pttl = await redis.raw.pTTL(key);
      expect(pttl, name).toBeGreaterThan(100_000);
      expect(pttl, name).toBeLessThanOrEqual(120_000);
    }
    await built.remove("old");
    await old.remove("new");
    expect(await redis.raw.exists([`${RUN}-ttl::{old}`, `${RUN}-ttl::{new}`])).toBe(0);
  });

  it("both take an entry whose envelope has expired for a miss and delete it", async () => {
    const [old, built] = await pair("expired");
    for (const [name, store] of [
      ["old", old],
      ["new", built],
    ] as const) {
      await redis.raw.set(
        `${RUN}-expired::{${name}}`,
        JSON.stringify({ value: 1, expires: Date.now() - 1_000 }),
      );
      expect(await store.get(name), name).toBeUndefined();
      expect(await redis.raw.exists(`${RUN}-expired::{${name}}`), name).toBe(0);
    }
  });

  it("list the same keys", async () => {
    const [old, built] = await pair("keys");
    await old.set("from-old", 1, 60);
    await built.set("from-new", 1);
    await built.set("with::colons", 1, 60);
    await (await old.acquireLock!("locked", { ttlMs: 10_000 }))?.release();
    const lock = await built.acquireLock!("from-old", { ttlMs: 10_000 });
    expect((await old.keys!()).sort()).toEqual(["from-new", "from-old", "with::colons"]);
    expect((await built.keys!()).sort()).toEqual(["from-new", "from-old", "with::colons"]);
    await lock?.release();
  });

  it("exclude each other with one lock key", async () => {
    const [old, built] = await pair("lock");
    const lockKey = `credcache:lock:${RUN}-lock:{k}`;
    const oldHeld = await old.acquireLock!("k", { ttlMs: 10_000 });
    expect(oldHeld).toBeDefined();
    expect(await built.acquireLock!("k", { ttlMs: 10_000 }), "held by the Keyv-based store").toBeUndefined();
    await oldHeld!.release();
    const newHeld = await built.acquireLock!("k", { ttlMs: 10_000 });
    expect(newHeld).toBeDefined();
    expect(await redis.raw.exists(lockKey)).toBe(1);
    expect(await old.acquireLock!("k", { ttlMs: 10_000 }), "held by the built-in store").toBeUndefined();
    await newHeld!.release();
    expect(await redis.raw.exists(lockKey)).toBe(0);
  });

  it("share one fetch: a provider on either store serves the other's credentials", async () => {
    const [old, built] = await pair("fetch");
    let sourceCalls = 0;
    const source = async () => {
      sourceCalls += 1;
      return {
        accessKeyId: "ASIACOMPATFETCH00001",
        secretAccessKey: `compat-secret-${randomUUID()}`,
        expiration: new Date(Date.now() + 3_600_000),
      };
    };
    const onOld = fromCache({ provider: source, cache: old, key: "sts:role", proactiveRefresh: false });
    const onNew = fromCache({ provider: source, cache: built, key: "sts:role", proactiveRefresh: false });
    const first = await onNew();
    expect((await onOld()).secretAccessKey).toBe(first.secretAccessKey);
    expect(sourceCalls).toBe(1);
    onOld.close();
    onNew.close();
  });

  it("a short-lived process that never calls close() still exits once it has its answer", async () => {
    const [, built] = await pair("exit");
    await built.set("k", { exits: true }, 60);
    const result = await runFixture(["short-lived.mjs", REDIS_URL, `${RUN}-exit`, "k"]);
    expect(result).toMatchObject({ code: 0, stdout: JSON.stringify({ value: { exits: true } }) });
  });

  it("redis:// works with no keyv, @keyv/redis or @redis/client installed", async () => {
    const [, built] = await pair("no-peers");
    await built.set("k", { peers: "none" }, 60);
    const result = await runFixture([
      "--import",
      "./without-redis-packages.mjs",
      "short-lived.mjs",
      REDIS_URL,
      `${RUN}-no-peers`,
      "k",
    ]);
    expect(result.stderr).toBe("");
    expect(result).toMatchObject({ code: 0, stdout: JSON.stringify({ value: { peers: "none" } }) });
  });
});
