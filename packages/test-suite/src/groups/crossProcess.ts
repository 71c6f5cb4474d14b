import type { CacheLock } from "@credcache/core";
import { type Check, LONG_LOCK_MS, lockOf, takeOver } from "../check.js";
import { expectOneOf, type TaggedValue, taggedValue } from "./concurrency.js";

/** The lease a child holds when it is killed. */
const KILLED_TTL_MS = 1_000;

export const crossProcessChecks: Check[] = [
  {
    name: "a value written in one process is visible in the others",
    timeoutMs: 60_000,
    async run(t) {
      const parent = await t.moduleStore();
      const [a, b] = await Promise.all([t.spawn(), t.spawn()]);
      const fromChild = t.key("xp-from-child");
      const fromParent = t.key("xp-from-parent");
      const value = { from: "child a", nested: { n: 1, unicode: "鍵 🔑" } };

      await a.set(fromChild, value);
      t.expect(await parent.get(fromChild), "the parent reads child a's write").toEqual(value);
      t.expect(await b.get(fromChild), "child b reads child a's write").toEqual(value);

      await parent.set(fromParent, { from: "parent" });
      t.expect(await a.get(fromParent), "child a reads the parent's write").toEqual({ from: "parent" });

      await b.set(fromParent, { from: "child b" });
      t.expect(await parent.get(fromParent), "the parent reads child b's overwrite").toEqual({
        from: "child b",
      });

      await b.remove(fromChild);
      t.expect(await parent.get(fromChild), "the parent after child b removed").toBeUndefined();
      t.expect(await a.get(fromChild), "child a after child b removed").toBeUndefined();
    },
  },
  {
    name: "parallel writes from two processes never give a third a torn value",
    timeoutMs: 60_000,
    async run(t) {
      const parent = await t.moduleStore();
      const [a, b] = await Promise.all([t.spawn(), t.spawn()]);
      const key = t.key("xp-torn");
      const written = new Map<number, TaggedValue>();
      const seed = taggedValue(0, 8192);
      written.set(0, seed);
      await parent.set(key, seed);
      const writes: Array<Promise<void>> = [];
      for (let i = 1; i <= 80; i++) {
        const value = taggedValue(i, 2048 + ((i * 1543) % 14_000));
        written.set(i, value);
        writes.push((i % 2 ? a : b).set(key, value));
      }
      let writing = true;
      const allWritten = Promise.all(writes).finally(() => {
        writing = false;
      });
      const seen: unknown[] = [];
      const reader = async () => {
        // Bounded: stops when the writers finish, or after 1000 reads.
        while (writing && seen.length < 1000) seen.push(await parent.get(key));
      };
      await Promise.all([allWritten, reader(), reader()]);
      for (const [i, value] of seen.entries()) expectOneOf(t.expect, written, value, `parent read #${i}`);
      expectOneOf(t.expect, written, await parent.get(key), "the final parent read");
      expectOneOf(t.expect, written, await a.get(key), "the final read in child a");
    },
  },
  {
    name: "exactly one of several processes gets the lock",
    timeoutMs: 60_000,
    async run(t) {
      const parent = await t.moduleStore();
      const acquire = lockOf(parent);
      const children = await Promise.all([t.spawn(), t.spawn()]);
      const key = t.key("xp-lock-race");
      for (let round = 1; round <= 2; round++) {
        const results = await Promise.all([
          acquire(key, { ttlMs: LONG_LOCK_MS }),
          ...children.map((child) => child.acquireLock(key, { ttlMs: LONG_LOCK_MS })),
        ]);
        const winners = results.filter((lock): lock is CacheLock => lock !== undefined);
        t.expect(winners.length, `processes that got a handle in round ${round}`).toBe(1);
        await winners[0]!.release();
      }
    },
  },
  {
    name: "a lock held by one process excludes the others until it is released",
    timeoutMs: 60_000,
    async run(t) {
      const parent = await t.moduleStore();
      const acquire = lockOf(parent);
      const [a, b] = await Promise.all([t.spawn(), t.spawn()]);
      const key = t.key("xp-lock-held");
      const heldByA = await a.acquireLock(key, { ttlMs: LONG_LOCK_MS });
      t.expect(heldByA, "child a takes the lock").toBeDefined();
      t.expect(
        await acquire(key, { ttlMs: LONG_LOCK_MS }),
        "the parent while child a holds it",
      ).toBeUndefined();
      t.expect(
        await b.acquireLock(key, { ttlMs: LONG_LOCK_MS }),
        "child b while child a holds it",
      ).toBeUndefined();
      await heldByA!.release();
      const heldByB = await b.acquireLock(key, { ttlMs: LONG_LOCK_MS });
      t.expect(heldByB, "child b after child a released").toBeDefined();
      t.expect(
        await acquire(key, { ttlMs: LONG_LOCK_MS }),
        "the parent while child b holds it",
      ).toBeUndefined();
      await heldByA!.release();
      t.expect(
        await acquire(key, { ttlMs: LONG_LOCK_MS }),
        "the parent after child a's stale release",
      ).toBeUndefined();
      await heldByB!.release();
      const heldByParent = await acquire(key, { ttlMs: LONG_LOCK_MS });
      t.expect(heldByParent, "the parent after child b released").toBeDefined();
      t.expect(
        await a.acquireLock(key, { ttlMs: LONG_LOCK_MS }),
        "child a while the parent holds it",
      ).toBeUndefined();
      await heldByParent!.release();
    },
  },
  {
    name: "the lock of a holder killed with SIGKILL is taken over after ttlMs",
    timeoutMs: 60_000,
    async run(t) {
      const parent = await t.moduleStore();
      const acquire = lockOf(parent);
      const [doomed, other] = await Promise.all([t.spawn(), t.spawn()]);
      const key = t.key("xp-lock-killed");
      t.expect(
        await doomed.acquireLock(key, { ttlMs: KILLED_TTL_MS }),
        "the holder that will be killed",
      ).toBeDefined();
      t.expect(
        await acquire(key, { ttlMs: LONG_LOCK_MS }),
        "the parent while the holder lives",
      ).toBeUndefined();
      await doomed.kill();
      // Wall-clock time only: the module's stores do not see the test clock.
      const taker = await takeOver(t, parent, key, KILLED_TTL_MS, false);
      if (taker.takenOver !== undefined) t.expect(taker.takenOver, "handle.takenOver").toBe(true);
      t.expect(
        await other.acquireLock(key, { ttlMs: LONG_LOCK_MS }),
        "another process after the takeover",
      ).toBeUndefined();
      await taker.release();
      const next = await other.acquireLock(key, { ttlMs: LONG_LOCK_MS });
      t.expect(next, "another process after the new holder released").toBeDefined();
      await next!.release();
    },
  },
];
