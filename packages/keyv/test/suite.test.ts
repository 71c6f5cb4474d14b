import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { credentialCacheSuite } from "@credcache/test-suite";
import KeyvRedis from "@keyv/redis";
import KeyvSqlite from "@keyv/sqlite";
import { Keyv } from "keyv";
import * as vitest from "vitest";
import { createRedisCache, keyvCache, redisLock } from "../src/index.js";
import { deleteKeys, describeWithRedis, REDIS_URL, rawRedis, redisUp } from "./redis.js";

// Every suite namespace (here and in store-module.mjs) is "cc-test-" + a suite temp dir's name.
const NAMESPACES = "cc-test-credcache-suite-*";

// After both Redis suites (a no-op without Redis: nothing was written).
vitest.afterAll(async () => {
  if (!redisUp) return;
  const client = await rawRedis();
  await deleteKeys(client, `${NAMESPACES}::*`);
  await deleteKeys(client, `credcache:lock:${NAMESPACES}:*`);
  await client.close();
});

describeWithRedis("createRedisCache", () => {
  credentialCacheSuite(
    vitest,
    (ctx) => createRedisCache({ url: REDIS_URL, namespace: `cc-test-${basename(ctx.tempDir)}` }),
    {
      name: "createRedisCache (built-in client)",
      // Redis expires entries on the wall clock.
      injectedClock: false,
      lock: true,
      crossProcess: { modulePath: fileURLToPath(new URL("./store-module.mjs", import.meta.url)) },
    },
  );
});

describeWithRedis("keyvCache on keyv + @keyv/redis", () => {
  credentialCacheSuite(
    vitest,
    (ctx) => {
      const namespace = `cc-test-${basename(ctx.tempDir)}`;
      const keyvRedis = new KeyvRedis(REDIS_URL, { throwOnErrors: true });
      const keyv = new Keyv({ store: keyvRedis, namespace, useKeyPrefix: false, throwOnErrors: true });
      const store = keyvCache(keyv, { lock: redisLock(() => keyvRedis.getClient(), { namespace }) });
      store.close = () => keyv.disconnect();
      return store;
    },
    { name: "keyv + @keyv/redis", injectedClock: false, lock: true },
  );
});

credentialCacheSuite(
  vitest,
  (ctx) => {
    const keyv = new Keyv({
      store: new KeyvSqlite(`sqlite://${join(ctx.tempDir, "keyv.db")}`),
      throwOnErrors: true,
    });
    const store = keyvCache(keyv);
    // keyvCache leaves the Keyv instance to its owner; here the test is the owner.
    store.close = () => keyv.disconnect();
    return store;
  },
  { name: "keyv + @keyv/sqlite", injectedClock: false },
);
