// Sentinel, the tested example of docs/redis.md: keyvCache over @keyv/redis's Sentinel
// client, with redisLock and hashTags, against a private redis-server and a private
// redis-sentinel watching it. It shares records and locks with createRedisCache on the master.
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import KeyvRedis from "@keyv/redis";
import { Keyv } from "keyv";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createRedisCache, keyvCache, redisLock } from "../src/index.js";
import { expectOneLockKey, freePort, startRedisServer } from "./redis.js";
import { describeWithRedisServer } from "./redisServer.js";

describeWithRedisServer("Sentinel through the Keyv path (private redis-server and redis-sentinel)", () => {
  const RUN = `cc-sentinel-${randomUUID().slice(0, 8)}`;
  let master: Awaited<ReturnType<typeof startRedisServer>>;
  let sentinel: ChildProcess;
  let sentinelPort: number;
  let dir: string;

  beforeAll(async () => {
    master = await startRedisServer([]);
    sentinelPort = await freePort();
    dir = mkdtempSync(join(tmpdir(), "credcache-sentinel-"));
    const config = join(dir, "sentinel.conf");
    writeFileSync(
      config,
      [
        `port ${sentinelPort}`,
        "bind 127.0.0.1",
        `dir ${dir}`,
        `sentinel monitor mymaster 127.0.0.1 ${master.port} 1`,
        "sentinel down-after-milliseconds mymaster 2000",
        "",
      ].join("\n"),
    );
    sentinel = spawn("redis-server", [config, "--sentinel"], { stdio: ["ignore", "pipe", "pipe"] });
    await new Promise<void>((resolve, reject) => {
      let output = "";
      sentinel.stdout?.on("data", (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes("+monitor master mymaster")) resolve();
      });
      sentinel.on("exit", (code) =>
        reject(new Error(`redis-sentinel exited (${code}): ${output.slice(-500)}`)),
      );
    });
  }, 60_000);

  afterAll(async () => {
    sentinel?.kill("SIGKILL");
    await master?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("keyvCache + redisLock on @keyv/redis's Sentinel client: reads, writes and locks; shares both with createRedisCache", async () => {
    const keyvRedis = new KeyvRedis(
      { name: "mymaster", sentinelRootNodes: [{ host: "127.0.0.1", port: sentinelPort }] },
      { throwOnConnectError: true, throwOnErrors: true },
    );
    const keyv = new Keyv({ store: keyvRedis, namespace: RUN, useKeyPrefix: false, throwOnErrors: true });
    const viaSentinel = keyvCache(keyv, {
      lock: redisLock(() => keyvRedis.getClient(), { namespace: RUN }),
      hashTags: true,
    });
    const builtIn = await createRedisCache({ url: `redis://127.0.0.1:${master.port}`, namespace: RUN });
    try {
      await viaSentinel.set("k", { via: "sentinel" }, 60);
      expect(await builtIn.get("k")).toEqual({ via: "sentinel" });
      await builtIn.set("k2", { via: "built-in" }, 60);
      expect(await viaSentinel.get("k2")).toEqual({ via: "built-in" });
      await expectOneLockKey(viaSentinel, builtIn, "k");
    } finally {
      await keyv.disconnect();
      await builtIn.close?.();
    }
  });
});
