/** The test run's Redis (`redis://127.0.0.1:<port>`), or undefined when there is none. */
export const TEST_REDIS_URL: string | undefined;

/** `describe(name, body)` when the run has a Redis; skipped with a reason (failing under CI) when not. */
export function describeWithRedis(name: string, body: () => void): void;

/** `it(name, fn, timeout)` when the run has a Redis; skipped with a reason (failing under CI) when not. */
export function itWithRedis(name: string, fn: () => unknown, timeout?: number): void;
