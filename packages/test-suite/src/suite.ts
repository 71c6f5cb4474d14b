import path from "node:path";
import type { Check } from "./check.js";
import { TestFixture } from "./fixture.js";
import { basicChecks } from "./groups/basic.js";
import { concurrencyChecks } from "./groups/concurrency.js";
import { crossProcessChecks } from "./groups/crossProcess.js";
import { hostileChecks } from "./groups/hostile.js";
import { keysChecks } from "./groups/keys.js";
import { lockChecks } from "./groups/lock.js";
import { ttlChecks } from "./groups/ttl.js";
import type { CredentialCacheSuiteOptions, StoreFactory, SuiteGroup, TestRegistrar } from "./types.js";

const DEFAULT_TIMEOUT_MS = 20_000;

interface GroupDefinition {
  name: SuiteGroup;
  checks: readonly Check[];
  /** Whether the store's declared capabilities allow this group at all. */
  applies(options: CredentialCacheSuiteOptions): boolean;
}

const groups: readonly GroupDefinition[] = [
  { name: "basic", checks: basicChecks, applies: () => true },
  { name: "ttl", checks: ttlChecks, applies: () => true },
  { name: "concurrency", checks: concurrencyChecks, applies: () => true },
  { name: "hostile", checks: hostileChecks, applies: () => true },
  { name: "lock", checks: lockChecks, applies: (options) => options.lock === true },
  // Whether the store has keys() shows only on the store itself: each check looks, and
  // has nothing to check without it.
  { name: "keys", checks: keysChecks, applies: () => true },
  {
    name: "cross-process",
    checks: crossProcessChecks,
    applies: (options) => options.crossProcess !== undefined,
  },
];

/** Every group name, in the order the suite runs them. */
export const suiteGroups: readonly SuiteGroup[] = groups.map((group) => group.name);

function validate(
  registrar: TestRegistrar,
  factory: StoreFactory,
  options: CredentialCacheSuiteOptions,
): void {
  const fail = (message: string): never => {
    throw new TypeError(`credentialCacheSuite: ${message}`);
  };
  for (const name of ["describe", "it", "expect", "beforeEach", "afterEach"] as const) {
    if (typeof registrar?.[name] !== "function") {
      fail(
        `the first argument needs a ${name} function; pass vitest's namespace (import * as vitest from "vitest")`,
      );
    }
  }
  if (typeof factory !== "function") fail("the second argument must be a factory (ctx) => store");
  if (typeof options?.name !== "string" || options.name === "")
    fail("options.name must be a non-empty string");
  for (const group of options.skip ?? []) {
    if (!suiteGroups.includes(group))
      fail(`unknown group "${group}" in skip; the groups are ${suiteGroups.join(", ")}`);
  }
  if (options.crossProcess !== undefined) {
    const modulePath = options.crossProcess?.modulePath;
    if (typeof modulePath !== "string" || !path.isAbsolute(modulePath)) {
      fail(
        "options.crossProcess.modulePath must be an absolute path to an ES module " +
          '(e.g. fileURLToPath(new URL("./store-module.mjs", import.meta.url)))',
      );
    }
  }
}

/**
 * Registers the credcache conformance suite for one store. Call it at the top level
 * of a test file; it registers one describe() per group and one test per check.
 * Each test gets a fresh store from `factory`, random keys, its own temp dir and a
 * manual clock, and the suite closes the store, kills any child process and removes
 * the temp dirs afterwards. Tests of one call must run one at a time (the default).
 *
 * @param registrar - where to register tests: `{ describe, it, expect, beforeEach, afterEach }`
 * @param factory - builds a fresh store for each test from `{ tempDir, clock }`
 * @param options - the store's name and capabilities; which groups to skip
 *
 * @example
 * ```ts
 * import * as vitest from "vitest";
 * import { credentialCacheSuite } from "@credcache/test-suite";
 * import { fileCache } from "../src/index.js";
 *
 * credentialCacheSuite(vitest, (ctx) => fileCache({ dir: ctx.tempDir, clock: ctx.clock }), {
 *   name: "fs",
 *   injectedClock: true,
 *   lock: true,
 *   crossProcess: { modulePath: fileURLToPath(new URL("./store-module.mjs", import.meta.url)) },
 * });
 * ```
 */
export function credentialCacheSuite(
  registrar: TestRegistrar,
  factory: StoreFactory,
  options: CredentialCacheSuiteOptions,
): void {
  validate(registrar, factory, options);
  const skipped = new Set(options.skip ?? []);
  const settings: CredentialCacheSuiteOptions = { ...options, skip: [...skipped] };

  registrar.describe(`credential cache suite: ${options.name}`, () => {
    let fixture: TestFixture | undefined;
    registrar.beforeEach(async () => {
      fixture = await TestFixture.create(factory, settings, registrar.expect);
    });
    registrar.afterEach(async () => {
      const finished = fixture;
      fixture = undefined;
      await finished?.dispose();
    });

    for (const group of groups) {
      if (skipped.has(group.name) || !group.applies(settings)) continue;
      registrar.describe(group.name, () => {
        for (const check of group.checks) {
          registrar.it(
            check.name,
            async () => {
              if (!fixture)
                throw new Error("credentialCacheSuite: beforeEach did not run (is the registrar complete?)");
              await check.run(fixture);
            },
            check.timeoutMs ?? DEFAULT_TIMEOUT_MS,
          );
        }
      });
    }
  });
}
