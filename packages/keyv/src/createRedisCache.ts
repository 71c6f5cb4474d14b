import {
  CacheConfigError,
  type CredentialCache,
  describeValue,
  MissingAdapterError,
  redactUrl,
} from "@credcache/core";
import { keyvCache } from "./keyvCache.js";
import { checkNamespace } from "./namespace.js";
import { redisLock } from "./redisLock.js";
import type { RedisCacheOptions } from "./types.js";

type KeyvModule = typeof import("keyv");
type KeyvRedisModule = typeof import("@keyv/redis");

function isModuleNotFound(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND";
}

/** At most 120 characters of a text for an error message. */
function clip(text: string): string {
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

/** A Redis URL for an error message: core's `redactUrl` (user info masked up to the last "@"), short. */
function showUrl(url: string): string {
  return JSON.stringify(clip(redactUrl(url)));
}

/** A client error's message for ours: only when it quotes no URL (node-redis's can). */
function clientMessage(error: unknown): string {
  let text: string;
  try {
    text = String((error as { message?: unknown } | null)?.message ?? error);
  } catch {
    return "an error";
  }
  if (text.includes("@") || text.includes("//")) {
    const name = (error as { name?: unknown } | null)?.name;
    return typeof name === "string" ? name.slice(0, 40) : "an error";
  }
  return clip(text);
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

/**
 * Checks `url` as far as node-redis will read it, so that what it would reject with a
 * bare `TypeError("Invalid pathname")` or `URIError("URI malformed")` from inside
 * `new KeyvRedis` is a `CacheConfigError` that says what to fix.
 */
function checkUrl(url: unknown): void {
  if (typeof url !== "string") {
    throw new CacheConfigError(
      `createRedisCache: "url" must be a redis:// or rediss:// URL, got ${typeof url}`,
    );
  }
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    // The parse error carries the URL, password included: never pass it on.
  }
  const shown = showUrl(url);
  if (parsed === undefined) {
    throw new CacheConfigError(
      `createRedisCache: "url" must be a redis:// or rediss:// URL, got ${shown}, which does not parse ` +
        '(in a password, write "@" as %40, "#" as %23, "?" as %3F, "/" as %2F and "%" as %25)',
    );
  }
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") {
    throw new CacheConfigError(`createRedisCache: "url" must be a redis:// or rediss:// URL, got ${shown}`);
  }
  if (parsed.hostname === "") {
    throw new CacheConfigError(
      `createRedisCache: "url" must name a host, e.g. redis://host:6379, got ${shown}`,
    );
  }
  const at = url.lastIndexOf("@");
  if (
    at !== -1 &&
    !url
      .slice(at + 1)
      .toLowerCase()
      .startsWith(parsed.host.toLowerCase())
  ) {
    // "redis://user:pa#ss@host" parses as host "user" with a fragment: node-redis would look
    // up part of the password as a host name (and report it in its connection errors).
    throw new CacheConfigError(
      `createRedisCache: the user name and password in "url" must be percent-encoded ("@" as %40, "#" as %23, "?" as %3F, "/" as %2F), got ${shown}`,
    );
  }
  if (parsed.pathname !== "" && parsed.pathname !== "/" && !/^\/\d+$/.test(parsed.pathname)) {
    throw new CacheConfigError(
      `createRedisCache: the path of "url" must be a database number (redis://host:6379/0), got ${shown}`,
    );
  }
  try {
    decodeURIComponent(parsed.username);
    decodeURIComponent(parsed.password);
  } catch {
    throw new CacheConfigError(
      `createRedisCache: the user name and password in "url" must be percent-encoded (e.g. "%" as %25, "@" as %40), got ${shown}`,
    );
  }
}

function checkOptions(options: RedisCacheOptions): Required<RedisCacheOptions> {
  if (typeof options !== "object" || options === null) {
    throw new CacheConfigError('createRedisCache: pass options, e.g. { url: "redis://127.0.0.1:6379" }');
  }
  const { url, namespace = "credcache", lock = true, connectTimeoutMs = 1_000 } = options;
  checkUrl(url);
  checkNamespace("createRedisCache", namespace);
  if (typeof lock !== "boolean") {
    throw new CacheConfigError(`createRedisCache: "lock" must be true or false, got ${describeValue(lock)}`);
  }
  if (typeof connectTimeoutMs !== "number" || !Number.isFinite(connectTimeoutMs) || connectTimeoutMs <= 0) {
    throw new CacheConfigError(
      `createRedisCache: "connectTimeoutMs" must be a positive number of milliseconds, got ${describeValue(connectTimeoutMs)}`,
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
  let keyvRedis: InstanceType<KeyvRedisModule["default"]>;
  try {
    keyvRedis = new KeyvRedis(
      // No background reconnects (node-redis's default retries forever, keeping a process with a
      // dead Redis alive): a dropped connection is reopened by @keyv/redis on the next store call,
      // and a failed connect fails that one call fast.
      { url, socket: { connectTimeout: connectTimeoutMs, reconnectStrategy: false } },
      { throwOnConnectError: true, throwOnErrors: true },
    );
  } catch (error) {
    // node-redis parses the URL here, and some of its messages quote it: the error is not
    // kept as the cause, and its message is passed on only with the password masked.
    throw new CacheConfigError(
      `createRedisCache: the Redis client refused "url" ${showUrl(url)} (${clientMessage(error)}); ` +
        "it must be redis://[[user]:password@]host[:port][/db], e.g. redis://127.0.0.1:6379/0",
    );
  }
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
