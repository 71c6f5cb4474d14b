import { randomUUID } from "node:crypto";
import { instanceMetadataKey } from "@credcache/core";
import { type ImdsEmulator, startImdsEmulator } from "@credcache/imds-emulator";
import { createClient } from "@keyv/redis";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeWithRedis, TEST_REDIS_URL } from "../../../test/support/redis.mjs";
import { assertBuilt, CliRunner } from "./helpers.js";

const REDIS_URL = TEST_REDIS_URL ?? "redis://test-redis-not-started.invalid";

function newClient() {
  const client = createClient({
    url: REDIS_URL,
    socket: { connectTimeout: 1_000, reconnectStrategy: false },
  });
  client.on("error", () => {});
  return client;
}

describeWithRedis("credcache with a Redis cache", () => {
  const namespace = `credcache-cli-test-${randomUUID()}`;
  const cache = `${REDIS_URL}?namespace=${namespace}`;
  let emulator: ImdsEmulator;
  let cli: CliRunner;

  beforeAll(async () => {
    assertBuilt();
    emulator = await startImdsEmulator({ port: 0 });
    cli = new CliRunner({ AWS_EC2_METADATA_SERVICE_ENDPOINT: emulator.url });
  });

  afterAll(async () => {
    const stderr = cli.stderrLog.join("\n");
    for (const secret of emulator.secretsIssued()) expect(stderr.includes(secret)).toBe(false);
    await emulator.close();
    const client = newClient();
    await client.connect();
    for (const pattern of [`${namespace}*`, `credcache:lock:${namespace}:*`]) {
      for await (const keys of client.scanIterator({ MATCH: pattern, COUNT: 500 })) {
        if (keys.length > 0) await client.del(keys);
      }
    }
    await client.destroy();
  });

  it("10 concurrent runs on a cold Redis cache make one fetch; inspect and clear see the entry", async () => {
    emulator.resetStats();
    const runs = await Promise.all(
      Array.from({ length: 10 }, () => cli.run(["process", "--source", "imds", "--cache", cache])),
    );
    for (const run of runs) expect(run.code, run.stderr).toBe(0);
    expect(new Set(runs.map((run) => run.stdout)).size).toBe(1);
    expect(emulator.stats.credentialFetches).toBe(1);
    expect(JSON.parse(runs[0]!.stdout).AccessKeyId).toBe(emulator.currentCredentials().accessKeyId);

    const key = instanceMetadataKey({ env: { AWS_EC2_METADATA_SERVICE_ENDPOINT: emulator.url } });
    const inspected = await cli.run(["inspect", "--cache", cache, "--json"]);
    expect(inspected.code, inspected.stderr).toBe(0);
    expect(JSON.parse(inspected.stdout).entries).toContainEqual(
      expect.objectContaining({ key, status: "ok", source: "imds", window: "fresh" }),
    );

    const cleared = await cli.run(["clear", "--source", "imds", "--cache", cache]);
    expect(cleared).toMatchObject({ code: 0, stdout: `removed ${key}\n` });
  });

  it("a Redis that refuses connections is bypassed: credentials still come from the source", async () => {
    const run = await cli.run(["process", "--source", "imds", "--cache", "redis://127.0.0.1:1"]);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).Version).toBe(1);
    expect(run.stderr).toMatch(/^credcache process: warning: cache .* failed: /);
  });
});
