import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { instanceMetadataKey, refreshStateKey } from "@credcache/core";
import { type ImdsEmulator, startImdsEmulator } from "@credcache/imds-emulator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openStore } from "../../battery/stores.mjs";
import { outputOf } from "../support/childOutput.mjs";
import { itWithRedis, TEST_REDIS_URL } from "../support/redis.mjs";

/**
 * Shared state is advice, never a veto (issue 19): another tenant of the store plants a
 * refresh state for the victim's key, and the built `credcache process --source imds`
 * still gets credentials from the emulator, at once, and prints none of the planted text.
 */

const CLI = fileURLToPath(new URL("../../packages/cli/dist/bin.cjs", import.meta.url));
const root = mkdtempSync(join(tmpdir(), "credcache-planted-"));
const YEAR_5138 = Date.UTC(5138, 10, 16);
/** Attacker text: clears the screen, sets the window title, a C1 CSI. */
const HOSTILE = "\u001b[2J\u001b]0;pwned\u0007\u009b31m";
/** Well past the caller's own patience (12 s): a run still going by then was held up. */
const KILL_AFTER_MS = 45_000;
let emulator: ImdsEmulator;

beforeAll(async () => {
  emulator = await startImdsEmulator();
});
afterAll(async () => {
  await emulator.close();
  rmSync(root, { recursive: true, force: true });
});

function runCli(cacheUrl: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, [CLI, "process", "--source", "imds", "--cache", cacheUrl], {
    env: { ...process.env, AWS_EC2_METADATA_SERVICE_ENDPOINT: emulator.url },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return outputOf(proc, { killAfterMs: KILL_AFTER_MS });
}

const plants = {
  "an attempt mark until the year 5138": {
    v: 1,
    kind: "refresh-state",
    failures: 0,
    nextAttemptAt: 0,
    attempt: { id: "planted", machine: "elsewhere", pid: 1, until: YEAR_5138 },
  },
  "a backoff until the year 5138": {
    v: 1,
    kind: "refresh-state",
    failures: 7,
    nextAttemptAt: YEAR_5138,
    error: { name: "Error", message: `the source is down ${HOSTILE}` },
  },
};

const stores = [
  {
    name: "file",
    make: (id: string) => {
      const dir = join(root, `fs-${id}`);
      return { spec: { kind: "fs", dir }, url: `file://${dir}` };
    },
  },
  {
    name: "redis",
    make: (id: string) => {
      const namespace = `planted-${id}`;
      return {
        spec: { kind: "redis", url: TEST_REDIS_URL, namespace },
        url: `${TEST_REDIS_URL}?namespace=${namespace}`,
      };
    },
  },
] as const;

describe.each(stores)("a planted refresh state in a real $name store", ({ name, make }) => {
  const itOn = name === "redis" ? itWithRedis : it;
  for (const [what, state] of Object.entries(plants)) {
    itOn(
      `${what}: credcache process still gets credentials from the source`,
      async () => {
        const { spec, url } = make(randomBytes(4).toString("hex"));
        const key = instanceMetadataKey({ env: { AWS_EC2_METADATA_SERVICE_ENDPOINT: emulator.url } });
        const store = await openStore(spec);
        try {
          await store.set(refreshStateKey(key), state, 3600);
        } finally {
          await store.close?.();
        }
        const before = emulator.stats.credentialFetches;
        const run = await runCli(url);
        expect(run.code, `exit code; stderr: ${JSON.stringify(run.stderr)}`).toBe(0);
        expect(JSON.parse(run.stdout)).toMatchObject({ Version: 1, AccessKeyId: expect.any(String) });
        expect(emulator.stats.credentialFetches, "the source was asked").toBe(before + 1);
        expect(run.stderr, "no planted text reaches the terminal").not.toContain("pwned");
        expect(run.stderr).not.toContain("\u001b");
        expect(run.stderr).not.toContain("\u009b");
      },
      KILL_AFTER_MS + 15_000,
    );
  }
});
