import type { TestClock } from "./types.js";

/**
 * A manual clock for store tests: it reads `start` (default: the real `Date.now()`)
 * until `advance` moves it. Both methods work detached (`const { now } = clock`).
 *
 * @example
 * ```ts
 * const clock = createTestClock();
 * const store = memoryCache({ clock });
 * await store.set("k", 1, 60);
 * clock.advance(61_000);
 * await store.get("k"); // undefined
 * ```
 */
export function createTestClock(start: number = Date.now()): TestClock {
  if (!Number.isFinite(start)) {
    throw new RangeError(`createTestClock: start must be a finite epoch ms, got ${start}`);
  }
  let current = start;
  return {
    now: () => current,
    advance: (ms: number) => {
      if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) {
        throw new RangeError(`TestClock.advance: ms must be a non-negative finite number, got ${ms}`);
      }
      current += ms;
    },
  };
}
