// The reference file store with a classic bug: its lock lives in process memory, so
// it excludes callers in the same process and nobody else. The suite must catch it.
import { assertCacheKey, assertLockTtl } from "@credcache/core";
import { referenceFsStore } from "./reference-fs-store.mjs";

const held = new Map();

export default function brokenFsStore({ location }) {
  const store = referenceFsStore({ location });
  return {
    ...store,
    async acquireLock(key, { ttlMs }) {
      assertCacheKey(key);
      assertLockTtl(ttlMs);
      const current = held.get(key);
      if (current && current.expiresAt > Date.now()) return undefined;
      const token = Symbol(key);
      held.set(key, { token, expiresAt: Date.now() + ttlMs });
      return {
        async release() {
          if (held.get(key)?.token === token) held.delete(key);
        },
      };
    },
  };
}
