// Opening each real store by a plain spec, for groups and children alike, and planting
// raw bytes where each store keeps its records.

import { join } from "node:path";
import { setting } from "./settings.mjs";

/**
 * spec: { kind: "memory" } | { kind: "fs", dir } | { kind: "sqlite", path }
 *     | { kind: "redis", url, namespace }
 */
export async function openStore(spec, { clock } = {}) {
  const withClock = clock ? { clock } : {};
  switch (spec.kind) {
    case "memory": {
      const { memoryCache } = await import("@credcache/memory");
      return memoryCache({ ...withClock });
    }
    case "fs": {
      const { fileCache } = await import("@credcache/fs");
      return fileCache({ dir: spec.dir, ...withClock });
    }
    case "sqlite": {
      const { sqliteCache } = await import("@credcache/sqlite");
      return sqliteCache({ path: spec.path, ...withClock });
    }
    case "redis": {
      const { createRedisCache } = await import("@credcache/keyv");
      // Redis keeps TTLs by its own clock: no clock to inject.
      return createRedisCache({ url: spec.url, namespace: spec.namespace });
    }
    default:
      throw new Error(`unknown store kind ${spec.kind}`);
  }
}

/** Where the fs adapter keeps `key`. */
export async function fsEntryPath(dir, key) {
  const { entryFileName } = await import("@credcache/fs");
  return join(dir, entryFileName(key));
}

/** Where @credcache/keyv's createRedisCache keeps `key`: `<namespace>::{<key>}` (a cluster hash tag). */
export function redisKeyOf(namespace, key) {
  return `${namespace}::{${key}}`;
}

export const REDIS_URL = setting("BATTERY_REDIS_URL") ?? "redis://127.0.0.1:6379";
