// The test Redis set-up as a user meets it: a vitest run of its own on a file that needs
// Redis, with redis-server on PATH and without it, with CI set and not.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { redisServerOnPath } from "./redisServer.mjs";

const fixture = fileURLToPath(new URL("./fixtures/needs-redis/", import.meta.url));
const vitest = fileURLToPath(new URL("../../node_modules/vitest/vitest.mjs", import.meta.url));
/** A PATH holding node and nothing else: a machine without Redis. */
const bare = mkdtempSync(join(tmpdir(), "credcache-bare-path-"));
symlinkSync(process.execPath, join(bare, "node"));
afterAll(() => rmSync(bare, { recursive: true, force: true }));

/** Runs the fixture's vitest (never this run's Redis or CI setting) and collects its exit code and output. */
function run(env: Record<string, string | undefined>): Promise<{ code: number | null; output: string }> {
  const { CI: _ci, CREDCACHE_TEST_REDIS_URL: _url, CREDCACHE_TEST_REDIS_SKIP: _skip, ...rest } = process.env;
  const child = spawn(process.execPath, [vitest, "run", "--config", "vitest.config.mjs"], {
    cwd: fixture,
    env: { ...rest, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    output += chunk;
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    output += chunk;
  });
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, output })));
}

describe("the test Redis", () => {
  it("without redis-server on PATH: the Redis test is skipped, with one line saying why, and the run passes", async () => {
    const { code, output } = await run({ PATH: bare });
    expect(output).toContain('skipping "a test that needs Redis": redis-server is not on PATH');
    expect(output).toMatch(/1 skipped/);
    expect(code).toBe(0);
  });

  it("without redis-server on PATH and CI set: the run fails, saying why", async () => {
    const { code, output } = await run({ PATH: bare, CI: "true" });
    expect(output).toContain("CI is set and these tests cannot run: redis-server is not on PATH");
    expect(code).toBe(1);
  });

  it.skipIf(!redisServerOnPath())(
    "with redis-server on PATH: a private server on a free port answers",
    async () => {
      const { code, output } = await run({ PATH: process.env.PATH });
      expect(output).toMatch(/1 passed/);
      expect(code).toBe(0);
    },
  );
});
