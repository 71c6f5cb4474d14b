// Loaded by plain `node` in the suite's child processes: imports the BUILT package (run `npx tsup` first).
import { basename } from "node:path";
import { createRedisCache } from "@credcache/keyv";

/**
 * Parent and children get the same namespace from the shared location, so they share Redis keys;
 * the test run's Redis reaches the children through the environment (test/support/redisGlobalSetup.mjs).
 */
export default ({ location }) =>
  createRedisCache({ url: process.env.CREDCACHE_TEST_REDIS_URL, namespace: `cc-test-${basename(location)}` });
