import type { CredentialCache } from "@credcache/core";
import { type Check, LONG_LOCK_MS, lockOf, preview, sleep } from "../check.js";
import type { TestFixture } from "../fixture.js";

const YEAR_MS = 365 * 24 * 60 * 60_000;
/** Sub-second TTL for stores on the wall clock, and how long to wait for it to pass. */
const SHORT_TTL_SECONDS = 0.3;
const SHORT_TTL_WAIT_MS = 600;
/** Extra real time a wall-clock store may take to stop listing an expired entry. */
const EXPIRY_GRACE_MS = 2_000;

type ListKeys = () => Promise<string[]>;

/** The store's `keys`, or `undefined` when it has none: the group then has nothing to check. */
function keysOf(store: CredentialCache): ListKeys | undefined {
  return typeof store.keys === "function" ? store.keys.bind(store) : undefined;
}

/**
 * Lists the store's keys and keeps this test's: every key the test writes holds its random
 * token, and so would a lock key or a key with a namespace left on. A shared server (Redis)
 * holds other keys, which are none of this test's business.
 */
async function ownKeys(t: TestFixture, keys: ListKeys, when: string): Promise<string[]> {
  const all: unknown = await keys();
  if (!Array.isArray(all)) throw new Error(`${when}: keys() resolved to ${preview(all)}; expected an array`);
  for (const key of all) {
    if (typeof key !== "string" || key === "") {
      throw new Error(`${when}: keys() listed ${preview(key)}; every key is a non-empty string`);
    }
  }
  const own = (all as string[]).filter((key) => key.includes(t.keyToken));
  const repeated = own.filter((key, index) => own.indexOf(key) !== index);
  if (repeated.length > 0) {
    throw new Error(`${when}: keys() listed ${preview(repeated[0])} more than once`);
  }
  return own.sort();
}

/** The keys of one check: unusual on purpose, all holding the test's token. */
function keySet(t: TestFixture): { base: string; keys: string[] } {
  const base = t.key("keys");
  return {
    base,
    keys: [
      base,
      `${base}/child`, // a key that extends another is a key of its own
      `${base}/ключ/🔑/é`,
      `${base}/a/../../etc/passwd`,
      `${base}\\back\\slash`,
      `${base}::double:colons:`,
      `${base} with spaces and "quotes" *?`,
    ],
  };
}

export const keysChecks: Check[] = [
  {
    name: "keys() lists exactly the keys set, as given to set; not removed ones, never lock entries",
    async run(t) {
      const store = await t.store();
      const keys = keysOf(store);
      if (!keys) return;
      const { base, keys: written } = keySet(t);
      t.expect(await ownKeys(t, keys, "before any set"), "keys of this test before any set").toEqual([]);

      for (const [index, key] of written.entries()) await store.set(key, { index }, index % 2 ? 60 : 0);
      await store.set(written[0]!, { index: 0, overwritten: true }); // listed once
      const removed = `${base}/removed`;
      await store.set(removed, { removed: true });
      await store.remove(removed);
      const expected = [...written].sort();
      t.expect(await ownKeys(t, keys, "after set"), "keys of this test after set and remove").toEqual(
        expected,
      );

      if (t.options.lock) {
        // A lock kept in the same keyspace must not show up as an entry.
        const acquire = lockOf(store);
        const onEntry = await acquire(written[1]!, { ttlMs: LONG_LOCK_MS });
        const lockOnly = await acquire(`${base}/locked-only`, { ttlMs: LONG_LOCK_MS });
        t.expect(onEntry, "a lock on a key with an entry").toBeDefined();
        t.expect(lockOnly, "a lock on a key without one").toBeDefined();
        t.expect(
          await ownKeys(t, keys, "while locks are held"),
          "keys while two locks are held (a lock entry is listed?)",
        ).toEqual(expected);
        await onEntry?.release();
        await lockOnly?.release();
      }

      // What a tool such as `credcache clear` does with the listing: each key reads and removes.
      for (const [index, key] of written.entries()) {
        const value = await store.get(key);
        t.expect(value, `get() of listed key #${index} (${preview(key)})`).toMatchObject({ index });
      }
      for (const key of await ownKeys(t, keys, "before removing")) await store.remove(key);
      t.expect(await ownKeys(t, keys, "after removing every listed key"), "keys after removing").toEqual([]);
    },
  },
  {
    name: "keys() leaves out expired entries",
    timeoutMs: 20_000,
    async run(t) {
      const store = await t.store();
      const keys = keysOf(store);
      if (!keys) return;
      const short = t.key("keys-short");
      const long = t.key("keys-long");
      const forever = t.key("keys-forever");
      const expected = [long, forever].sort();
      if (t.options.injectedClock) {
        await store.set(short, { short: true }, 2);
        await store.set(long, { long: true }, 60);
        await store.set(forever, { forever: true });
        t.clock.advance(1_000);
        t.expect(await ownKeys(t, keys, "1 s in"), "keys 1 s into a 2 s TTL").toEqual(
          [short, long, forever].sort(),
        );
        t.clock.advance(1_500);
        t.expect(
          await ownKeys(t, keys, "2.5 s in"),
          "keys 2.5 s into a 2 s TTL (with injectedClock: true, keys() must read time from ctx.clock)",
        ).toEqual(expected);
        t.clock.advance(YEAR_MS);
        t.expect(await ownKeys(t, keys, "a year later"), "keys a year later").toEqual([forever]);
      } else {
        await store.set(short, { short: true }, SHORT_TTL_SECONDS);
        await store.set(long, { long: true }, 60);
        await store.set(forever, { forever: true });
        await sleep(SHORT_TTL_WAIT_MS);
        const deadline = Date.now() + EXPIRY_GRACE_MS;
        let listed = await ownKeys(t, keys, `after a ${SHORT_TTL_SECONDS} s TTL`);
        while (listed.includes(short) && Date.now() < deadline) {
          await sleep(50);
          listed = await ownKeys(t, keys, `after a ${SHORT_TTL_SECONDS} s TTL`);
        }
        t.expect(
          listed,
          `keys ${SHORT_TTL_WAIT_MS + EXPIRY_GRACE_MS} ms after a ${SHORT_TTL_SECONDS} s TTL ran out`,
        ).toEqual(expected);
      }
      t.expect(await store.get(forever), "an entry listed by keys() still reads").toEqual({ forever: true });
    },
  },
];
