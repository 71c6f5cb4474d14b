import { readFileSync } from "node:fs";
import { stat } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { type CredentialCache, fromCache } from "../src/index.js";
import { recorder, scriptedSource } from "./harness.js";

// Alone in its file: the store deadlines share one module-wide sweeper timer, and a
// sweeper left running by an earlier test would change when it first fires.
describe("fromCache: store deadlines", () => {
  it("a reply that arrived while the event loop was stalled is used, not reported as a timeout", async () => {
    const file = fileURLToPath(import.meta.url);
    // One thread-pool round trip: the reply is ready during the stall below.
    const store: CredentialCache = {
      get: () => stat(file).then(() => undefined),
      set: async () => {},
      remove: async () => {},
    };
    const rec = recorder();
    const source = scriptedSource(Date);
    const provider = fromCache({
      provider: source.provider,
      cache: store,
      key: "k",
      cacheTimeoutMs: 30,
      onEvent: rec.onEvent,
    });
    const pending = provider();
    // A busy event loop (a CPU-bound burst, a loaded host) well past the deadline.
    const until = Date.now() + 120;
    while (Date.now() < until) readFileSync(file);
    await pending;
    expect(rec.of("cache-error"), "the get answered in time; only the loop was late").toEqual([]);
    await provider.close();
  });
});
