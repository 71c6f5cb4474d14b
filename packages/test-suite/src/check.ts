import type { CacheLock, CredentialCache } from "@credcache/core";
import type { TestFixture } from "./fixture.js";

/** One conformance check: becomes one `it()` in its group. */
export interface Check {
  name: string;
  /** Test timeout for registrars that take one. @default 20_000 */
  timeoutMs?: number;
  run(t: TestFixture): Promise<void>;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A short, secret-free description of a value for failure messages. */
export function preview(value: unknown): string {
  if (value === undefined) return "undefined";
  let text: string;
  try {
    text = typeof value === "string" ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  } catch {
    text = String(value);
  }
  return text.length > 160 ? `${text.slice(0, 160)}… (${text.length} chars)` : text;
}

/**
 * Calls a store method that must reject with core's `CacheArgumentError`. It has to
 * return a rejected promise (not throw synchronously: callers chain on it).
 */
export async function expectArgumentError(what: string, call: () => Promise<unknown>): Promise<void> {
  let pending: Promise<unknown>;
  try {
    pending = call();
  } catch (error) {
    throw new Error(
      `${what} threw synchronously (${describeError(error)}); a store method must return a rejected promise`,
    );
  }
  let value: unknown;
  try {
    value = await pending;
  } catch (error) {
    const code = (error as { code?: unknown } | undefined)?.code;
    if (error instanceof Error && code === "ERR_CREDCACHE_ARGUMENT") return;
    throw new Error(
      `${what} rejected with ${describeError(error)}; expected core's CacheArgumentError ` +
        '(code "ERR_CREDCACHE_ARGUMENT"): call assertCacheKey / expiresAtFromTtl / assertLockTtl first',
    );
  }
  throw new Error(`${what} resolved (to ${preview(value)}); expected a rejection with CacheArgumentError`);
}

function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return `${error.name}${typeof code === "string" ? ` [${code}]` : ""}: ${error.message}`;
  }
  return `a non-Error (${preview(error)})`;
}

/** The store's acquireLock, or a clear failure when the store claims `lock: true` without one. */
export function lockOf(store: CredentialCache): NonNullable<CredentialCache["acquireLock"]> {
  if (typeof store.acquireLock !== "function") {
    throw new Error("options.lock is true but the store has no acquireLock method");
  }
  return store.acquireLock.bind(store);
}

/** How long past `ttlMs` a dead holder's lock may stay before the suite calls it a failure. */
export const TAKEOVER_GRACE_MS = 12_000;
/** The lease the suite asks for when it does not want the lock to expire during a check. */
export const LONG_LOCK_MS = 20_000;

/**
 * Takes over a lock abandoned with `abandonedTtlMs`. Advances the test clock first (for
 * stores whose leases run on the injected clock), then polls in real time (for stores
 * whose leases run on the wall clock), until the lock is won or the deadline passes.
 */
export async function takeOver(
  t: TestFixture,
  store: CredentialCache,
  key: string,
  abandonedTtlMs: number,
  advanceClock = true,
): Promise<CacheLock> {
  const acquire = lockOf(store);
  if (advanceClock) t.clock.advance(abandonedTtlMs + 1);
  const limitMs = abandonedTtlMs + TAKEOVER_GRACE_MS;
  const deadline = Date.now() + limitMs;
  for (;;) {
    const lock = await acquire(key, { ttlMs: LONG_LOCK_MS });
    if (lock) return lock;
    if (Date.now() >= deadline) {
      throw new Error(
        `a lock abandoned with ttlMs ${abandonedTtlMs} was still held ${limitMs} ms later; ` +
          "a lock whose holder died must be taken over after ttlMs (a lease, not a heartbeat)",
      );
    }
    await sleep(50);
  }
}
