import { CacheConfigError, type CacheLock, newLockToken } from "@credcache/core";
import { checkNamespace } from "./namespace.js";
import type { RespClient } from "./respClient.js";
import type {
  IoRedisClient,
  LockProvider,
  NodeRedisClient,
  RedisLockClient,
  RedisLockOptions,
} from "./types.js";

/** Where `redisLock` keeps its locks. A store whose adapter lists a whole Redis database sees them. */
export const LOCK_KEY_PREFIX = "credcache:lock:";

/** Deletes the lock only if it still holds our token, so a holder whose lease ran out cannot free its successor. */
export const RELEASE_SCRIPT =
  'if redis.call("get",KEYS[1]) == ARGV[1] then return redis.call("del",KEYS[1]) else return 0 end';

/** The two commands a lock needs, whatever the client library. */
interface LockCommands {
  setIfAbsent(key: string, token: string, ttlMs: number): Promise<boolean>;
  deleteIfHeld(key: string, token: string): Promise<void>;
}

function commandsFor(client: unknown): LockCommands {
  const candidate = client as Partial<Record<"isOpen" | "status" | "set" | "eval", unknown>> | null;
  if (typeof candidate?.set !== "function" || typeof candidate.eval !== "function") {
    throw new CacheConfigError("redisLock: pass a node-redis (v4/v5) or ioredis client");
  }
  if (typeof candidate.isOpen === "boolean") {
    const redis = client as NodeRedisClient;
    return {
      // The { NX, PX } form: node-redis v5 marks it deprecated but it is the one v4 also understands.
      setIfAbsent: async (key, token, ttlMs) =>
        (await redis.set(key, token, { NX: true, PX: ttlMs })) === "OK",
      deleteIfHeld: async (key, token) => {
        await redis.eval(RELEASE_SCRIPT, { keys: [key], arguments: [token] });
      },
    };
  }
  if (typeof candidate.status === "string") {
    const redis = client as IoRedisClient;
    return {
      setIfAbsent: async (key, token, ttlMs) => (await redis.set(key, token, "PX", ttlMs, "NX")) === "OK",
      deleteIfHeld: async (key, token) => {
        await redis.eval(RELEASE_SCRIPT, 1, key, token);
      },
    };
  }
  throw new CacheConfigError(
    "redisLock: pass a node-redis (v4/v5) or ioredis client; this one has neither isOpen (node-redis) nor status (ioredis)",
  );
}

/**
 * A cross-process, cross-host lock in Redis for `keyvCache({ lock })`. Taken with
 * `SET <key> <token> NX PX <ttlMs>`; released with a compare-and-delete script, so a
 * holder whose lease expired cannot free the lock of the one that took over. A holder
 * that dies frees the lock when Redis expires the key after `ttlMs`.
 *
 * Lock keys are `credcache:lock:<namespace>:<key>` (`credcache:lock:<key>` without a
 * namespace).
 *
 * @param client A node-redis v4/v5 client (e.g. `keyvRedis.client` of `@keyv/redis` 5)
 *   or an ioredis client, told apart by shape; or a function resolving to one, called
 *   per lock operation (use it when the client connects lazily).
 *
 * @example
 * ```ts
 * const keyvRedis = new KeyvRedis("redis://cache.internal:6379");
 * const cache = keyvCache(new Keyv({ store: keyvRedis }), {
 *   lock: redisLock(() => keyvRedis.getClient()),
 * });
 * ```
 */
export function redisLock(
  client: RedisLockClient | (() => Promise<RedisLockClient>),
  options: RedisLockOptions = {},
): LockProvider {
  const prefix = lockPrefix(options);
  if (typeof client !== "function") {
    const commands = commandsFor(client);
    return lockProvider(prefix, async () => commands);
  }
  let last: { client: unknown; commands: LockCommands } | undefined;
  return lockProvider(prefix, async () => {
    const current = await client();
    if (last?.client !== current) last = { client: current, commands: commandsFor(current) };
    return last.commands;
  });
}

function lockPrefix(options: RedisLockOptions | undefined): string {
  const { namespace } = options ?? {};
  checkNamespace("redisLock", namespace);
  return namespace === undefined ? LOCK_KEY_PREFIX : `${LOCK_KEY_PREFIX}${namespace}:`;
}

/**
 * `redisLock` on `createRedisCache`'s built-in client: the same keys and the same two
 * commands (`SET <key> <token> NX PX <ttlMs>`, the release script by `EVAL`), so hosts on
 * either client exclude each other.
 * @internal
 */
export function builtInRedisLock(client: RespClient, options?: RedisLockOptions): LockProvider {
  const commands: LockCommands = {
    setIfAbsent: async (key, token, ttlMs) =>
      (await client.send(["SET", key, token, "NX", "PX", String(ttlMs)])) === "OK",
    deleteIfHeld: async (key, token) => {
      await client.send(["EVAL", RELEASE_SCRIPT, "1", key, token]);
    },
  };
  return lockProvider(lockPrefix(options), async () => commands);
}

function lockProvider(prefix: string, commands: () => Promise<LockCommands>): LockProvider {
  return {
    async acquire(key: string, ttlMs: number): Promise<CacheLock | undefined> {
      const lockKey = prefix + key;
      const token = newLockToken();
      const taken = await (await commands()).setIfAbsent(lockKey, token, Math.ceil(ttlMs));
      if (!taken) return undefined;
      let released = false;
      return {
        async release() {
          if (released) return;
          await (await commands()).deleteIfHeld(lockKey, token);
          released = true;
        },
      };
    },
  };
}
