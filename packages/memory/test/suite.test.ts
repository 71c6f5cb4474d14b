import { credentialCacheSuite } from "@credcache/test-suite";
import * as vitest from "vitest";
import { memoryCache } from "../src/index.js";

// Every group but cross-process: a memory store lives and dies with its process.
credentialCacheSuite(vitest, (ctx) => memoryCache({ clock: ctx.clock }), {
  name: "memory",
  injectedClock: true,
  lock: true,
});
