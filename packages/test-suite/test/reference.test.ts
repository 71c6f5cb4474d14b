import { fileURLToPath } from "node:url";
import * as vitest from "vitest";
import { credentialCacheSuite } from "../src/index.js";
import { referenceFsStore } from "./reference-fs-store.mjs";
import { referenceStore } from "./reference-store.js";

// The whole suite, against stores known to be right, in each of its modes.

credentialCacheSuite(vitest, (ctx) => referenceStore({ clock: ctx.clock }), {
  name: "reference (injected clock)",
  injectedClock: true,
  lock: true,
});

credentialCacheSuite(vitest, () => referenceStore(), {
  name: "reference (wall clock)",
  injectedClock: false,
  lock: true,
});

credentialCacheSuite(vitest, (ctx) => referenceFsStore({ location: ctx.tempDir }), {
  name: "reference files",
  lock: true,
  crossProcess: { modulePath: fileURLToPath(new URL("./reference-fs-store.mjs", import.meta.url)) },
});
