import { join } from "node:path";
import { credentialCacheSuite } from "@credcache/test-suite";
import * as vitest from "vitest";
import { fileCache } from "../src/index.js";
import { assertBuilt, here } from "./helpers.js";

vitest.beforeAll(assertBuilt);

credentialCacheSuite(vitest, (ctx) => fileCache({ dir: join(ctx.tempDir, "cache"), clock: ctx.clock }), {
  name: "fs",
  injectedClock: true,
  lock: true,
  crossProcess: { modulePath: join(here, "store-module.mjs") },
});
