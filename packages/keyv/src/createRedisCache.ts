import { CacheConfigError, type CredentialCache, MissingAdapterError, redactUrl } from "@credcache/core";
import { keyvCache } from "./keyvCache.js";
import { redisLock } from "./redisLock.js";
import type { RedisCacheOptions } from "./types.js";

type KeyvModule = typeof import("keyv");
type KeyvRedisModule = typeof import("@keyv/redis");

function isModuleNotFound(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND";
}

/** Imports an optional peer, or says which package to install. */
export async function importPeer<T>(load: () => Promise<T>, packageName: string): Promise<T> {
  try {
    return await load();
  } catch (error) {
    if (isModuleNotFound(error)) throw new MissingAdapterError(packageName, "redis", { cause: error });
    throw error;
  }
}

function checkOptions(options: RedisCacheOptions): Required<RedisCacheOptions> {
  if (typeof options !== "object" || options === null) {
    throw new CacheConfigError('createRedisCache: pass options, e.g. { url: "redis://127.0.0.1:6379" }');
  }
  const { url, namespace = "credcache", lock = true, connectTimeoutMs = 1_000 } = options;
  let protocol: string | undefined;
  try {
    protocol = typeof url === "string" ? new URL(url).protocol : undefined;
  } catch {
    // The parse error carries the URL, password included: never pass it on.
  }
  if (protocol !== "redis:" && protocol !== "rediss:") {
    throw new CacheConfigError(
      `createRedisCache: "url" must be a redis:// or rediss:// URL, got ${typeof url === "string" ? `"${redactUrl(url)}"` : typeof url}`,
    );
  }
  if (typeof namespace !== "string" || namespace === "") {
    throw new CacheConfigError(
      `createRedisCache: "namespace" must be a non-empty string, got ${JSON.stringify(namespace)}`,
    );
  }
  if (typeof lock !== "boolean") {
    throw new CacheConfigError(`createRedisCache: "lock" must be true or false, got ${JSON.stringify(lock)}`);
  }
  if (typeof connectTimeoutMs !== "number" || !Number.isFinite(connectTimeoutMs) || connectTimeoutMs <= 0) {
    throw new CacheConfigError(
      `createRedisCache: "connectTimeoutMs" must be a positive number of milliseconds, got ${JSON.stringify(connectTimeoutMs)}`,
    );
  }
  return { url: url as string, namespace, lock, connectTimeoutMs };
}

/**
 * A Redis store for a fleet: `keyv` + `@keyv/redis` (both loaded lazily; install them
 * next to this package) with the Redis lock, so that all hosts share credentials and
 * one of them refreshes per rotation. This is what `createCache("redis://...")` builds.
 *
 * Nothing connects until the first store call, and a Redis that is down never fails a
 * credential resolution: each call tries one connection (refused at once, or given up
 * after `connectTimeoutMs`), fails, and `fromCache` reports a `cache-error` event and
 * asks the source. There are no background reconnects: a dropped connection is reopened
 * by the next call. `close()` disconnects.
 *
 * `keys()` lists this namespace's unexpired keys (never lock keys) through `@keyv/redis`'s
 * SCAN-based iterator; it never sends `KEYS`.
 *
 * @throws {CacheConfigError} a malformed option (the URL's password is never echoed).
 * @throws {MissingAdapterError} `keyv` or `@keyv/redis` is not installed; names the package.
 *
 * @example
 * ```ts
 * import { fromCachedTemporaryCredentials } from "@credcache/core";
 * import { createRedisCache } from "@credcache/keyv";
 *
 * const credentials = fromCachedTemporaryCredentials({
 *   params: { RoleArn: "arn:aws:iam::123456789012:role/worker" },
 *   cache: await createRedisCache({ url: process.env.REDIS_URL! }),
 * });
 * ```
 */
export async function createRedisCache(options: RedisCacheOptions): Promise<CredentialCache> {
  const { url, namespace, lock, connectTimeoutMs } = checkOptions(options);
  const [{ Keyv }, { default: KeyvRedis }] = await Promise.all([
    importPeer<KeyvModule>(() => import("keyv"), "keyv"),
    importPeer<KeyvRedisModule>(() => import("@keyv/redis"), "@keyv/redis"),
  ]);
  const keyvRedis = new KeyvRedis(
    // No background reconnects (node-redis's default retries forever, keeping a process with a
    // dead Redis alive): a dropped connection is reopened by @keyv/redis on the next store call,
    // and a failed connect fails that one call fast.
    { url, socket: { connectTimeout: connectTimeoutMs, reconnectStrategy: false } },
    { throwOnConnectError: true, throwOnErrors: true },
  );
  // @keyv/redis prefixes keys with the namespace itself ("<namespace>::<key>"); Keyv must not add its own.
  const keyv = new Keyv({ store: keyvRedis, namespace, useKeyPrefix: false, throwOnErrors: true });
  const store = keyvCache(keyv, lock ? { lock: redisLock(() => keyvRedis.getClient(), { namespace }) } : {});
  store.close = async () => {
    // QUIT when connected; while (re)connecting there is nothing to flush, so just drop the socket.
    const ready = (keyvRedis.client as { isReady?: boolean }).isReady === true;
    await keyvRedis.disconnect(!ready);
  };
  return store;
}
