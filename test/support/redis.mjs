// The Redis every test uses: the private server the global set-up started
// (redisGlobalSetup.mjs), never one that happens to run on 6379. Without redis-server on
// PATH the Redis tests are skipped with one line saying why; under CI they fail instead.
import { describe, it } from "vitest";
import { registerNeeding } from "./needs.mjs";

/** The test run's Redis (`redis://127.0.0.1:<port>`), or undefined when there is none. */
export const TEST_REDIS_URL = process.env.CREDCACHE_TEST_REDIS_URL || undefined;

/** Why this run has no Redis, or undefined. */
const missing = TEST_REDIS_URL
  ? undefined
  : process.env.CREDCACHE_TEST_REDIS_SKIP ||
    "the test Redis was not started (run vitest with the repository's vitest.config.ts)";

/** `describe(name, body)` when the run has a Redis; skipped with a reason (failing under CI) when not. */
export function describeWithRedis(name, body) {
  registerNeeding(missing, describe, name, body);
}

/** `it(name, fn, timeout)` when the run has a Redis; skipped with a reason (failing under CI) when not. */
export function itWithRedis(name, fn, timeout) {
  registerNeeding(missing, it, name, fn, timeout);
}
