export interface TestClock {
  now(): number;
  advance(ms: number): void;
  set(ms: number): void;
}

/**
 * A clock at `start` (epoch ms; by default a whole second, since EC2 times have no
 * milliseconds) that only `advance` and `set` move.
 */
export function testClock(start?: number): TestClock;
