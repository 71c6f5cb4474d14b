// The manual clock the core and IMDS-emulator tests drive: it stands still until a test
// moves it, so time-based behaviour is tested without sleeping.

/**
 * A clock at `start` (epoch ms; by default a whole second, since EC2 times have no
 * milliseconds) that only `advance` and `set` move.
 */
export function testClock(start = Date.UTC(2026, 10, 26, 12, 0, 0)) {
  let t = start;
  return {
    now: () => t,
    advance: (ms) => {
      t += ms;
    },
    set: (ms) => {
      t = ms;
    },
  };
}
