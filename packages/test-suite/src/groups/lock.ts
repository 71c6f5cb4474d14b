import { type Check, expectArgumentError, LONG_LOCK_MS, lockOf, takeOver } from "../check.js";

/** The lease the suite abandons to simulate a holder that died. */
const ABANDONED_TTL_MS = 500;

export const lockChecks: Check[] = [
  {
    name: "exactly one of 10 parallel acquireLock calls gets the lock",
    async run(t) {
      const acquire = lockOf(await t.store());
      const key = t.key("lock-race");
      const results = await Promise.all(
        Array.from({ length: 10 }, () => acquire(key, { ttlMs: LONG_LOCK_MS })),
      );
      const winners = results.filter((lock) => lock !== undefined);
      t.expect(winners.length, "callers that got a handle").toBe(1);
      await winners[0]?.release();
    },
  },
  {
    name: "acquireLock resolves to undefined while the lock is held; release lets the next caller in",
    async run(t) {
      const acquire = lockOf(await t.store());
      const key = t.key("lock-held");
      const first = await acquire(key, { ttlMs: LONG_LOCK_MS });
      t.expect(first, "the first caller gets a handle").toBeDefined();
      t.expect(await acquire(key, { ttlMs: LONG_LOCK_MS }), "a second caller while held").toBeUndefined();
      t.expect(await acquire(key, { ttlMs: LONG_LOCK_MS }), "a third caller while held").toBeUndefined();
      t.expect(await first!.release()).toBeUndefined();
      const next = await acquire(key, { ttlMs: LONG_LOCK_MS });
      t.expect(next, "the next caller after release").toBeDefined();
      t.expect(
        await acquire(key, { ttlMs: LONG_LOCK_MS }),
        "a caller while the next one holds it",
      ).toBeUndefined();
      await next!.release();
    },
  },
  {
    name: "locks on different keys are independent",
    async run(t) {
      const acquire = lockOf(await t.store());
      const a = t.key("lock-a");
      const b = t.key("lock-b");
      const lockA = await acquire(a, { ttlMs: LONG_LOCK_MS });
      const lockB = await acquire(b, { ttlMs: LONG_LOCK_MS });
      t.expect(lockA, "lock on key a").toBeDefined();
      t.expect(lockB, "lock on key b while a is held").toBeDefined();
      await lockA!.release();
      t.expect(await acquire(b, { ttlMs: LONG_LOCK_MS }), "b after releasing a").toBeUndefined();
      await lockB!.release();
    },
  },
  {
    name: "a lock does not touch the value stored under the same key",
    async run(t) {
      const store = await t.store();
      const acquire = lockOf(store);
      const key = t.key("lock-value");
      await store.set(key, { before: true });
      const lock = await acquire(key, { ttlMs: LONG_LOCK_MS });
      t.expect(lock).toBeDefined();
      t.expect(await store.get(key), "the value while the lock is held").toEqual({ before: true });
      await store.set(key, { during: true });
      t.expect(await store.get(key), "a value written while the lock is held").toEqual({ during: true });
      await lock!.release();
      t.expect(await store.get(key), "the value after release").toEqual({ during: true });
      await store.remove(key);
      t.expect(
        await acquire(key, { ttlMs: LONG_LOCK_MS }),
        "acquireLock after release and remove",
      ).toBeDefined();
    },
  },
  {
    name: "a lock that is never released is taken over after ttlMs",
    timeoutMs: 30_000,
    async run(t) {
      const store = await t.store();
      const acquire = lockOf(store);
      const key = t.key("lock-abandoned");
      const abandoned = await acquire(key, { ttlMs: ABANDONED_TTL_MS });
      t.expect(abandoned, "the holder that will die").toBeDefined();
      t.expect(await acquire(key, { ttlMs: LONG_LOCK_MS }), "before ttlMs has passed").toBeUndefined();
      const taker = await takeOver(t, store, key, ABANDONED_TTL_MS);
      if (taker.takenOver !== undefined) t.expect(taker.takenOver, "handle.takenOver").toBe(true);
      t.expect(await acquire(key, { ttlMs: LONG_LOCK_MS }), "while the new holder has it").toBeUndefined();
      await taker.release();
    },
  },
  {
    name: "a release by an old holder after takeover does not free the new holder's lock",
    timeoutMs: 30_000,
    async run(t) {
      const store = await t.store();
      const acquire = lockOf(store);
      const key = t.key("lock-stale-release");
      const old = await acquire(key, { ttlMs: ABANDONED_TTL_MS });
      t.expect(old).toBeDefined();
      const current = await takeOver(t, store, key, ABANDONED_TTL_MS);
      await old!.release();
      t.expect(await acquire(key, { ttlMs: LONG_LOCK_MS }), "after the old holder released").toBeUndefined();
      await current.release();
      const next = await acquire(key, { ttlMs: LONG_LOCK_MS });
      t.expect(next, "after the current holder released").toBeDefined();
      await next!.release();
    },
  },
  {
    name: "releasing twice is harmless and does not free a later holder",
    async run(t) {
      const acquire = lockOf(await t.store());
      const key = t.key("lock-double-release");
      const first = await acquire(key, { ttlMs: LONG_LOCK_MS });
      t.expect(first).toBeDefined();
      await first!.release();
      await first!.release();
      const second = await acquire(key, { ttlMs: LONG_LOCK_MS });
      t.expect(second, "a caller after the double release").toBeDefined();
      await first!.release();
      t.expect(
        await acquire(key, { ttlMs: LONG_LOCK_MS }),
        "after the first handle released a third time",
      ).toBeUndefined();
      await second!.release();
    },
  },
  {
    name: "bad input rejects with CacheArgumentError and takes no lock",
    async run(t) {
      const acquire = lockOf(await t.store());
      const key = t.key("lock-bad-input");
      await expectArgumentError('acquireLock("")', () => acquire("", { ttlMs: LONG_LOCK_MS }));
      await expectArgumentError("acquireLock(key, { ttlMs: 0 })", () => acquire(key, { ttlMs: 0 }));
      await expectArgumentError("acquireLock(key, { ttlMs: -1 })", () => acquire(key, { ttlMs: -1 }));
      await expectArgumentError("acquireLock(key, { ttlMs: NaN })", () =>
        acquire(key, { ttlMs: Number.NaN }),
      );
      const lock = await acquire(key, { ttlMs: LONG_LOCK_MS });
      t.expect(lock, "a valid call after the bad ones").toBeDefined();
      await lock!.release();
    },
  },
];
