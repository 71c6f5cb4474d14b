import { refreshStateKey } from "@credcache/core";

const REFRESH_STATE_SUFFIX = refreshStateKey("");

/**
 * The name a cache key is stored under: `{key}`, and `{key}#refresh` for its refresh
 * state, so that a record, its refresh state and its lock (`credcache:lock:<ns>:{key}`)
 * share one Redis Cluster hash tag, hence one slot, and a script may touch them together.
 * @internal
 */
export function hashTagged(key: string): string {
  return key.endsWith(REFRESH_STATE_SUFFIX)
    ? `{${key.slice(0, -REFRESH_STATE_SUFFIX.length)}}${REFRESH_STATE_SUFFIX}`
    : `{${key}}`;
}

/** The cache key `hashTagged` made `name` from; `undefined` for a name it cannot have made. */
export function untagged(name: string): string | undefined {
  if (!name.startsWith("{")) return undefined;
  if (name.endsWith(`}${REFRESH_STATE_SUFFIX}`)) {
    return `${name.slice(1, -REFRESH_STATE_SUFFIX.length - 1)}${REFRESH_STATE_SUFFIX}`;
  }
  return name.endsWith("}") ? name.slice(1, -1) : undefined;
}
