import { describe, it } from "vitest";
import { redisServerOnPath } from "./cluster.mjs";

/**
 * Registers `body` when `redis-server` is on PATH (the tests start private servers). Without
 * it the tests fail under CI (a missing server must not pass silently) and are skipped with
 * one line saying why elsewhere.
 */
export function describeWithRedisServer(name: string, body: () => void): void {
  if (redisServerOnPath) {
    describe(name, body);
  } else if (process.env.CI) {
    describe(name, () => {
      it("needs redis-server on PATH", () => {
        throw new Error("redis-server is not on PATH, and CI is set: install redis-server for these tests");
      });
    });
  } else {
    console.warn(`[keyv tests] skipping "${name}": redis-server is not on PATH (set CI to make this fail)`);
    describe.skip(name, body);
  }
}
