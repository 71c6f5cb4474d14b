// The Redis every test uses: the private server the global set-up started
// (redisGlobalSetup.mjs), never one that happens to run on 6379. Without redis-server on
// PATH the Redis tests are skipped with one line saying why; under CI they fail instead.
import { describe, it } from "vitest";

/** The test run's Redis (`redis://127.0.0.1:<port>`), or undefined when there is none. */
export const TEST_REDIS_URL = process.env.CREDCACHE_TEST_REDIS_URL || undefined;

const reason =
  process.env.CREDCACHE_TEST_REDIS_SKIP ||
  "the test Redis was not started (run vitest with the repository's vitest.config.ts)";

/** Registers `name` as `register` would, skipped (one line saying why) or failing under CI without Redis. */
function withRedis(register, name, body, timeout) {
  if (TEST_REDIS_URL) return register(name, body, timeout);
  if (process.env.CI) {
    return it(`${name}: needs Redis`, () => {
      throw new Error(`no Redis for these tests, and CI is set: ${reason}`);
    });
  }
  console.warn(`skipping "${name}": ${reason} (install redis-server to run it)`);
  return register.skip(name, body, timeout);
}

/** `describe(name, body)` when the run has a Redis; skipped with a reason (failing under CI) when not. */
export function describeWithRedis(name, body) {
  withRedis(describe, name, body);
}

/** `it(name, fn, timeout)` when the run has a Redis; skipped with a reason (failing under CI) when not. */
export function itWithRedis(name, fn, timeout) {
  withRedis(it, name, fn, timeout);
}
