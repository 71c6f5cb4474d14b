import type { CredentialCache } from "@credcache/core";

/**
 * A clock that only moves when told to. Pass it to your store as its clock so the
 * suite can test TTLs (and, optionally, lock leases) without sleeping.
 */
export interface TestClock {
  /** Current time in epoch ms. Starts at the real `Date.now()` and never moves on its own. */
  now(): number;
  /** Moves the clock forward by `ms` milliseconds. */
  advance(ms: number): void;
}

/** What the suite hands your factory for each test. */
export interface SuiteContext {
  /** A fresh, empty, real directory for this test only; removed after the test. */
  readonly tempDir: string;
  /** A manual clock, fresh for this test. Honour it when `injectedClock` is true. */
  readonly clock: TestClock;
}

/** Builds a fresh store for one test. The suite calls `close?.()` on it after the test. */
export type StoreFactory = (ctx: SuiteContext) => CredentialCache | Promise<CredentialCache>;

/**
 * The default export of the module named by `crossProcess.modulePath`. The parent
 * test process and every child process call it with the same `location`, so they
 * must all end up looking at the same shared state.
 *
 * @example
 * ```js
 * // test/store-module.mjs, run by plain node: import BUILT packages only
 * import path from "node:path";
 * import { fileCache } from "@credcache/fs";
 * export default ({ location }) => fileCache({ dir: path.join(location, "cache") });
 * ```
 */
export type StoreModule = (options: {
  /** A fresh temp dir shared by the parent and its children (a namespace for remote stores). */
  location: string;
}) => CredentialCache | Promise<CredentialCache>;

/** The names of the suite's groups, as used in describe() titles and `skip`. */
export type SuiteGroup = "basic" | "ttl" | "concurrency" | "hostile" | "lock" | "keys" | "cross-process";

/** Options of {@link credentialCacheSuite}. */
export interface CredentialCacheSuiteOptions {
  /** The store's name, used in describe() titles. */
  name: string;
  /**
   * The store takes its TTL time from `ctx.clock`, so the ttl group advances the clock
   * instead of sleeping. When false, the ttl group uses sub-second TTLs and real waits.
   * @default false
   */
  injectedClock?: boolean;
  /**
   * The store implements `acquireLock`: run the lock group.
   * @default false
   */
  lock?: boolean;
  /** Run the cross-process group: real `node` child processes load `modulePath`. */
  crossProcess?: {
    /**
     * Absolute path of an ES module whose default export is a {@link StoreModule}.
     * Children run it with plain `node`, so it must import built packages.
     */
    modulePath: string;
  };
  /** Groups to switch off, e.g. `["concurrency"]`. */
  skip?: readonly SuiteGroup[];
}

/** Enough of an assertion library for the suite; vitest's and jest's `expect` fit. */
export interface Assertion {
  toBe(expected: unknown): void;
  toEqual(expected: unknown): void;
  toBeUndefined(): void;
  toBeDefined(): void;
  toMatchObject(expected: object): void;
  toContain(item: unknown): void;
  toHaveLength(length: number): void;
  not: Assertion;
}

/** The `expect` function the suite uses. */
export type ExpectFunction = (actual: unknown, message?: string) => Assertion;

/**
 * Where the suite registers its tests: any object with these five functions.
 * vitest's namespace (`import * as vitest from "vitest"`) passes as is.
 */
export interface TestRegistrar {
  describe(name: string, body: () => void): void;
  it(name: string, body: () => Promise<void>, timeout?: number): void;
  expect: ExpectFunction;
  beforeEach(hook: () => Promise<void> | void): void;
  afterEach(hook: () => Promise<void> | void): void;
}
