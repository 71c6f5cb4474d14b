import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { credentialCacheSuite } from "@credcache/test-suite";
import KeyvSqlite from "@keyv/sqlite";
import { Keyv } from "keyv";
import * as vitest from "vitest";
import { createRedisCache, keyvCache } from "../src/index.js";
import { deleteKeys, describeWithRedis, REDIS_URL, rawRedis } from "./redis.js";

// Every suite namespace (here and in store-module.mjs) is "cc-test-" + a suite temp dir's name.
const NAMESPACES = "cc-test-credcache-suite-*";

describeWithRedis("keyv + @keyv/redis", () => {
  vitest.afterAll(async () => {
    const client = await rawRedis();
    await deleteKeys(client, `${NAMESPACES}::*`);
    await deleteKeys(client, `credcache:lock:${NAMESPACES}:*`);
    await client.close();
  });

  credentialCacheSuite(
    vitest,
    (ctx) => createRedisCache({ url: REDIS_URL, namespace: `cc-test-${basename(ctx.tempDir)}` }),
    {
      name: "keyv + @keyv/redis",
      // Keyv and Redis expire entries on the wall clock.
      injectedClock: false,
      lock: true,
      crossProcess: { modulePath: fileURLToPath(new URL("./store-module.mjs", import.meta.url)) },
    },
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
