import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const project = (name: string, root: string, setupFiles: string[] = []) => ({
  extends: true as const,
  test: { name, root, include: ["test/**/*.test.ts"], setupFiles },
});

export default defineConfig({
  // Inside vitest, workspace packages resolve to their TypeScript source, so a test
  // never runs against a stale build. Child processes use plain node and the built dist.
  resolve: { conditions: ["@credcache/source"] },
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // One private redis-server for the run, when redis-server is on PATH (test/support/redis.mjs).
    globalSetup: [fileURLToPath(new URL("./test/support/redisGlobalSetup.mjs", import.meta.url))],
    projects: [
      project("core", "packages/core", ["./test/setup.ts"]),
      project("config", "packages/config"),
      project("memory", "packages/memory"),
      project("fs", "packages/fs"),
      project("sqlite", "packages/sqlite"),
      project("keyv", "packages/keyv"),
      project("test-suite", "packages/test-suite"),
      project("imds-emulator", "packages/imds-emulator"),
      project("cli", "packages/cli"),
      project("sqs-consumer", "examples/sqs-consumer"),
      // Cross-package tests at the root: README option tables against the code's defaults,
      // refresh coordination between real processes.
      project("repo", "."),
    ],
  },
});
