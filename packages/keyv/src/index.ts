export { createRedisCache } from "./createRedisCache.js";
export { keyvCache } from "./keyvCache.js";
export { redisLock } from "./redisLock.js";
export type {
  IoRedisClient,
  KeyvCacheOptions,
  KeyvLike,
  LockProvider,
  NodeRedisClient,
  RedisCacheOptions,
  RedisLockClient,
  RedisLockOptions,
} from "./types.js";
