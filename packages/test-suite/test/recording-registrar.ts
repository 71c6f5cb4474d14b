import { expect } from "vitest";
import type { TestRegistrar } from "../src/index.js";

type Hook = () => Promise<void> | void;

interface Scope {
  titles: string[];
  beforeEach: Hook[];
  afterEach: Hook[];
  parent: Scope | undefined;
}

export interface Outcome {
  /** Describe titles and the test name, joined with " > ". */
  title: string;
  error?: unknown;
}

/**
 * A registrar that records what the suite registers instead of handing it to vitest,
 * then runs it on demand, so a test can run the suite against a broken store and
 * look at which checks failed. Hooks run like vitest's: outer beforeEach first,
 * inner afterEach first, afterEach even when the test failed.
 */
export function recordingRegistrar(): TestRegistrar & { run(filter?: string): Promise<Outcome[]> } {
  const root: Scope = { titles: [], beforeEach: [], afterEach: [], parent: undefined };
  let current = root;
  const tests: Array<{ title: string; scope: Scope; body: () => Promise<void>; timeout: number }> = [];

  const chain = (scope: Scope): Scope[] => {
    const scopes: Scope[] = [];
    for (let s: Scope | undefined = scope; s; s = s.parent) scopes.unshift(s);
    return scopes;
  };

  return {
    expect: expect as unknown as TestRegistrar["expect"],
    describe(name, body) {
      const parent = current;
      current = { titles: [...parent.titles, name], beforeEach: [], afterEach: [], parent };
      try {
        body();
      } finally {
        current = parent;
      }
    },
    it(name, body, timeout = 5_000) {
      tests.push({ title: [...current.titles, name].join(" > "), scope: current, body, timeout });
    },
    beforeEach(hook) {
      current.beforeEach.push(hook);
    },
    afterEach(hook) {
      current.afterEach.push(hook);
    },
    async run(filter) {
      const outcomes: Outcome[] = [];
      for (const test of tests) {
        if (filter && !test.title.includes(filter)) continue;
        const scopes = chain(test.scope);
        let error: unknown;
        let timer: NodeJS.Timeout | undefined;
        try {
          for (const scope of scopes) for (const hook of scope.beforeEach) await hook();
          await Promise.race([
            test.body(),
            new Promise((_, reject) => {
              timer = setTimeout(() => reject(new Error(`timed out after ${test.timeout} ms`)), test.timeout);
            }),
          ]);
        } catch (caught) {
          error = caught;
        } finally {
          clearTimeout(timer);
          for (const scope of scopes.reverse()) {
            for (const hook of scope.afterEach) {
              try {
                await hook();
              } catch (caught) {
                error ??= caught;
              }
            }
          }
        }
        outcomes.push({ title: test.title, ...(error !== undefined && { error }) });
      }
      return outcomes;
    },
  };
}
