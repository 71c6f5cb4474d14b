import {
  CacheConfigError,
  type CredentialCache,
  describeValue,
  PROCESS_DEFAULTS,
  REFRESH_DEFAULTS,
  redactUrl,
} from "@credcache/core";
import { keyvCache } from "./keyvCache.js";
import { checkNamespace } from "./namespace.js";
import { redisKeyv } from "./redisKeyv.js";
import { builtInRedisLock } from "./redisLock.js";
import { RespClient } from "./respClient.js";
import type { RedisCacheOptions } from "./types.js";

/** At most 120 characters of a text for an error message. */
function clip(text: string): string {
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

/** A Redis URL for an error message: core's `redactUrl` (user info masked up to the last "@"), short. */
function showUrl(url: string): string {
  return JSON.stringify(clip(redactUrl(url)));
}

/**
 * Checks `url` before anything connects: what cannot be read (a password with a bare "#",
 * a bad percent-escape, a path that is no database number) is a `CacheConfigError` that
 * says what to fix, never a wrong host looked up or a password echoed.
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
    // "redis://user:pa#ss@host" parses as host "user" with a fragment: the client would look
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

/**
 * A command may wait as long as the most patient caller waits for a store call (the CLI's
 * `cacheTimeoutMs`): a shorter timeout would give up, as a cache error, inside the caller's own budget.
 */
export const DEFAULT_COMMAND_TIMEOUT_MS = Math.max(
  REFRESH_DEFAULTS.cacheTimeoutMs,
  PROCESS_DEFAULTS.cacheTimeoutMs,
);

function checkMs(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new CacheConfigError(
      `createRedisCache: "${name}" must be a positive number of milliseconds, got ${describeValue(value)}`,
    );
  }
  return value;
}

function checkOptions(options: RedisCacheOptions): Required<RedisCacheOptions> {
  if (typeof options !== "object" || options === null) {
    throw new CacheConfigError('createRedisCache: pass options, e.g. { url: "redis://127.0.0.1:6379" }');
  }
  const {
    url,
    namespace = "credcache",
    lock = true,
    connectTimeoutMs = 1_000,
    commandTimeoutMs = DEFAULT_COMMAND_TIMEOUT_MS,
  } = options;
  checkUrl(url);
  checkNamespace("createRedisCache", namespace);
  if (typeof lock !== "boolean") {
    throw new CacheConfigError(`createRedisCache: "lock" must be true or false, got ${describeValue(lock)}`);
  }
  return {
    url: url as string,
    namespace,
    lock,
    connectTimeoutMs: checkMs("connectTimeoutMs", connectTimeoutMs),
    commandTimeoutMs: checkMs("commandTimeoutMs", commandTimeoutMs),
  };
}

/**
 * A Redis store for a fleet, with the Redis lock, so that all hosts share credentials and
 * one of them refreshes per rotation. This is what `createCache("redis://...")` builds.
 * It needs no other package: it speaks RESP itself over `node:net` (`node:tls` for
 * `rediss://`), because loading a full Redis client costs a short-lived process more
 * start-up time than everything else it does.
 *
 * It reads and writes exactly what `keyvCache` over `keyv` + `@keyv/redis` does (values under
 * `<namespace>::<key>` in Keyv's JSON envelope, TTLs as `PX`; locks under
 * `credcache:lock:<namespace>:<key>`), so hosts on either share records and locks.
 *
 * Nothing connects until the first store call, and a Redis that is down never fails a
 * credential resolution: each call tries one connection (refused at once, or given up
 * after `connectTimeoutMs`), fails, and `fromCache` reports a `cache-error` event and
 * asks the source. There are no background reconnects: a dropped connection is reopened
 * by the next call. A command unanswered after `commandTimeoutMs` closes the connection.
 * The idle connection does not keep a process alive; `close()` disconnects.
 *
 * `keys()` lists this namespace's unexpired keys (never lock keys) with SCAN; it never
 * sends `KEYS`.
 *
 * @throws {CacheConfigError} a malformed option (the URL's password is never echoed).
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
  const { url, namespace, lock, connectTimeoutMs, commandTimeoutMs } = checkOptions(options);
  const client = new RespClient(url, { connectTimeoutMs, commandTimeoutMs });
  const store = keyvCache(
    redisKeyv(client, namespace),
    lock ? { lock: builtInRedisLock(client, { namespace }), hashTags: true } : { hashTags: true },
  );
  store.close = () => client.close();
  return store;
}
