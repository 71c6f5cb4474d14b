import type { CredentialCache } from "@credcache/core";
import { type Check, sleep } from "../check.js";

const YEAR_MS = 365 * 24 * 60 * 60_000;
/** Sub-second TTL for stores on the wall clock, and how long to wait for it to pass. */
const SHORT_TTL_SECONDS = 0.3;
const SHORT_TTL_WAIT_MS = 600;
/** Extra real time a wall-clock store may take to report an entry gone (lazy expiry, clock skew). */
const EXPIRY_GRACE_MS = 2_000;

/** Polls `get` until the entry is gone; fails with a clear message when it never goes. */
async function expectExpires(store: CredentialCache, key: string, what: string): Promise<void> {
  const deadline = Date.now() + EXPIRY_GRACE_MS;
  for (;;) {
    const value = await store.get(key);
    if (value === undefined) return;
    if (Date.now() >= deadline) {
      throw new Error(`${what}: the entry was still there ${EXPIRY_GRACE_MS} ms after its TTL ran out`);
    }
    await sleep(50);
  }
}

export const ttlChecks: Check[] = [
  {
    name: "TTL 0 and no TTL never expire",
    timeoutMs: 20_000,
    async run(t) {
      const store = await t.store();
      const zero = t.key("ttl-zero");
      const none = t.key("ttl-none");
      await store.set(zero, { ttl: 0 }, 0);
      await store.set(none, { ttl: "none" });
      await store.set(t.key("ttl-explicit-undefined"), { ttl: "undefined" }, undefined);
      if (t.options.injectedClock) t.clock.advance(10 * YEAR_MS);
      else await sleep(1_100);
      t.expect(await store.get(zero), "TTL 0").toEqual({ ttl: 0 });
      t.expect(await store.get(none), "no TTL").toEqual({ ttl: "none" });
    },
  },
  {
    name: "an entry expires after its TTL, and the key can be set again",
    timeoutMs: 20_000,
    async run(t) {
      const store = await t.store();
      const key = t.key("ttl-short");
      if (t.options.injectedClock) {
        const long = t.key("ttl-long");
        await store.set(key, { short: true }, 2);
        await store.set(long, { long: true }, 60);
        t.clock.advance(1_000);
        t.expect(await store.get(key), "1 s into a 2 s TTL").toEqual({ short: true });
        t.clock.advance(1_500);
        t.expect(
          await store.get(key),
          "2.5 s into a 2 s TTL (with injectedClock: true the store must read time from ctx.clock)",
        ).toBeUndefined();
        t.expect(await store.get(long), "2.5 s into a 60 s TTL").toEqual({ long: true });
      } else {
        const long = t.key("ttl-long");
        await store.set(key, { short: true }, SHORT_TTL_SECONDS);
        await store.set(long, { long: true }, 60);
        await sleep(SHORT_TTL_WAIT_MS);
        await expectExpires(store, key, `TTL ${SHORT_TTL_SECONDS} s`);
        t.expect(await store.get(long), "a 60 s TTL after the short one expired").toEqual({ long: true });
      }
      await store.set(key, { again: true });
      t.expect(await store.get(key), "set again after expiry").toEqual({ again: true });
    },
  },
  {
    name: "overwriting resets the TTL (no TTL after a TTL never expires)",
    timeoutMs: 20_000,
    async run(t) {
      const store = await t.store();
      const cleared = t.key("ttl-cleared");
      const extended = t.key("ttl-extended");
      const shortened = t.key("ttl-shortened");
      if (t.options.injectedClock) {
        await store.set(cleared, { v: 1 }, 1);
        await store.set(cleared, { v: 2 });
        await store.set(extended, { v: 1 }, 1);
        await store.set(extended, { v: 2 }, 100);
        await store.set(shortened, { v: 1 });
        await store.set(shortened, { v: 2 }, 1);
        t.clock.advance(2_000);
        t.expect(await store.get(cleared), "TTL 1 s, then set without TTL, 2 s later").toEqual({ v: 2 });
        t.expect(await store.get(extended), "TTL 1 s, then TTL 100 s, 2 s later").toEqual({ v: 2 });
        t.expect(await store.get(shortened), "no TTL, then TTL 1 s, 2 s later").toBeUndefined();
        t.clock.advance(YEAR_MS);
        t.expect(await store.get(cleared), "TTL 1 s, then set without TTL, a year later").toEqual({ v: 2 });
        t.expect(await store.get(extended), "TTL 1 s, then TTL 100 s, a year later").toBeUndefined();
      } else {
        await store.set(cleared, { v: 1 }, SHORT_TTL_SECONDS);
        await store.set(cleared, { v: 2 });
        await store.set(extended, { v: 1 }, SHORT_TTL_SECONDS);
        await store.set(extended, { v: 2 }, 60);
        await store.set(shortened, { v: 1 });
        await store.set(shortened, { v: 2 }, SHORT_TTL_SECONDS);
        await sleep(SHORT_TTL_WAIT_MS);
        await expectExpires(store, shortened, "no TTL, then a short TTL");
        t.expect(await store.get(cleared), "short TTL, then set without TTL").toEqual({ v: 2 });
        t.expect(await store.get(extended), "short TTL, then TTL 60 s").toEqual({ v: 2 });
      }
    },
  },
];
