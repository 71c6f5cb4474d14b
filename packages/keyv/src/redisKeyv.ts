import { deserializeKeyv, serializeKeyv } from "./keyvSerialize.js";
import type { RespClient } from "./respClient.js";
import type { KeyvLike } from "./types.js";

/** Redis SCAN patterns treat these as wildcards; a namespace is matched literally. */
function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, "\\$&");
}

/**
 * What `new Keyv({ store: new KeyvRedis(url), namespace, useKeyPrefix: false })` does on
 * the wire, over the built-in client, for `keyvCache` to drive: so `createRedisCache`
 * keeps every rule of `keyvCache` and stays byte-compatible with the Keyv-based code it
 * replaced. As Keyv 5.6 and `@keyv/redis` 5.1:
 *
 * - a value lives under `<namespace>::<key>`, as Keyv's envelope `{"value":...,"expires":<epoch ms>}`
 *   (`expires` left out without a TTL) in Keyv's serialization;
 * - a TTL is `SET ... PX <ms>`; 0 or none is a plain `SET`;
 * - a read is one `GET`; an envelope whose `expires` has passed is deleted and is a miss;
 * - a delete is `UNLINK`;
 * - the listing is `SCAN <cursor> MATCH <namespace>::* TYPE string` (on each master of a cluster)
 *   and a `GET` per key.
 * @internal
 */
export function redisKeyv(client: RespClient, namespace: string): KeyvLike {
  const head = `${namespace}::`;

  const adapter = {
    namespace,
    async get(key: string): Promise<string | undefined> {
      const stored = await client.send(["GET", head + key]);
      return typeof stored === "string" ? stored : undefined;
    },
    /**
     * `[key without the namespace, stored text]` for every string key of the namespace, on
     * every master of a cluster. Values are read with one GET each, pipelined: an MGET of a
     * page would span slots, which a cluster refuses.
     */
    async *iterator(): AsyncGenerator<[string, string | undefined]> {
      for (const node of await client.masters()) {
        let cursor = "0";
        do {
          const page = await client.sendTo(node, [
            "SCAN",
            cursor,
            "MATCH",
            `${globEscape(head)}*`,
            "COUNT",
            "500",
            "TYPE",
            "string",
          ]);
          const [next, keys] = Array.isArray(page) ? page : [];
          if (typeof next !== "string" || !Array.isArray(keys))
            throw new TypeError("SCAN answered with no cursor and keys");
          cursor = next;
          const names = keys.filter(
            (name): name is string => typeof name === "string" && name.startsWith(head),
          );
          const values = await Promise.all(names.map((name) => client.send(["GET", name])));
          for (const [i, name] of names.entries()) {
            const value = values[i];
            yield [name.slice(head.length), typeof value === "string" ? value : undefined];
          }
        } while (cursor !== "0");
      }
    },
  };

  const keyv: KeyvLike = {
    namespace,
    useKeyPrefix: false,
    store: adapter,
    // keyvCache only checks that Keyv could list its store; it reads `store.iterator` itself.
    iterator: adapter.iterator,
    deserializeData: async (data) => (typeof data === "string" ? deserializeKeyv(data) : data),

    async get(key, options) {
      const stored = await adapter.get(key);
      const entry =
        stored === undefined
          ? undefined
          : (deserializeKeyv(stored) as { expires?: unknown; value?: unknown } | null);
      if (entry === undefined || entry === null) return undefined;
      if (typeof entry.expires === "number" && Date.now() > entry.expires) {
        await keyv.delete(key);
        return undefined;
      }
      return options?.raw ? entry : entry.value;
    },

    async set(key, value, ttl) {
      const ttlMs = ttl === 0 ? undefined : ttl;
      const text = serializeKeyv({
        value,
        expires: typeof ttlMs === "number" ? Date.now() + ttlMs : undefined,
      });
      await client.send(ttlMs ? ["SET", head + key, text, "PX", String(ttlMs)] : ["SET", head + key, text]);
      return true;
    },

    async delete(key) {
      return ((await client.send(["UNLINK", head + key])) as number) > 0;
    },
  };
  return keyv;
}
