// Vitest global set-up (root vitest.config.ts): one private redis-server for the whole run,
// on a free loopback port, when redis-server is on PATH. Its URL reaches every test file,
// and every child process they start, as CREDCACHE_TEST_REDIS_URL; without it,
// CREDCACHE_TEST_REDIS_SKIP says why and the Redis tests skip (or fail, under CI).
import { startRedisServer } from "./redisServer.mjs";

// Vitest runs a root global set-up once for the root and once per project, in one
// process: they share one server, stopped when the last of them tears down.
const KEY = Symbol.for("credcache.testRedis");
globalThis[KEY] ??= { users: 0, ready: undefined };
const shared = globalThis[KEY];

async function start() {
  delete process.env.CREDCACHE_TEST_REDIS_URL;
  delete process.env.CREDCACHE_TEST_REDIS_SKIP;
  try {
    const server = await startRedisServer();
    process.env.CREDCACHE_TEST_REDIS_URL = server.url;
    return server;
  } catch (error) {
    process.env.CREDCACHE_TEST_REDIS_SKIP = error instanceof Error ? error.message : String(error);
    return undefined;
  }
}

export default async function setup() {
  shared.users += 1;
  shared.ready ??= start();
  await shared.ready;
  return async () => {
    shared.users -= 1;
    if (shared.users > 0) return;
    const server = await shared.ready;
    shared.ready = undefined;
    await server?.stop();
  };
}
