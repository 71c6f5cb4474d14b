import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { sqliteCache } from "@credcache/sqlite";
import { credentialCacheSuite } from "@credcache/test-suite";
import * as vitest from "vitest";

credentialCacheSuite(
  vitest,
  (ctx) => sqliteCache({ path: join(ctx.tempDir, "cache.db"), clock: ctx.clock }),
  {
    name: "sqlite",
    injectedClock: true,
    lock: true,
    crossProcess: { modulePath: fileURLToPath(new URL("./store-module.mjs", import.meta.url)) },
  },
);
