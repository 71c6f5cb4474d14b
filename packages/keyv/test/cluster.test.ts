// The built-in client against a real 6-node Redis Cluster (3 masters, 3 replicas on
// loopback), with real short-lived processes resolving through the real SDK against the
// IMDS emulator: a cold herd, a slot migration (ASK), a failover, and TLS with a private CA.
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { type ImdsEmulator, startImdsEmulator } from "@credcache/imds-emulator";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createRedisCache } from "../src/index.js";
import { type RedisCluster, slotOf, startCluster } from "./cluster.js";
import { describeWithRedisServer } from "./redisServer.js";

const RESOLVE = fileURLToPath(new URL("./fixtures/cluster-resolve.mjs", import.meta.url));

interface Resolved {
  ok: boolean;
  accessKeyId?: string;
  error?: string;
  events: string[];
}

/** Runs `count` processes at once, each resolving `key` once; resolves with their lines. */
function herd(
  count: number,
  spec: { url: string; namespace: string; key: string; patienceMs?: number },
  env: Record<string, string>,
): Promise<Resolved[]> {
  return Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<Resolved>((resolve) => {
          const child = spawn(process.execPath, [RESOLVE, JSON.stringify({ patienceMs: 15_000, ...spec })], {
            env: { ...process.env, ...env },
            stdio: ["ignore", "pipe", "pipe"],
          });
          let stdout = "";
          let stderr = "";
          child.stdout.on("data", (chunk) => (stdout += chunk));
          child.stderr.on("data", (chunk) => (stderr += chunk));
          child.on("close", (code) => {
            try {
              resolve(JSON.parse(stdout) as Resolved);
            } catch {
              resolve({ ok: false, error: `exit ${code}: ${stderr.slice(-500)}`, events: [] });
            }
          });
        }),
    ),
  );
}

/** A key whose slot a master other than the seed serves: the URL's node stays up whatever the test does to the key's master. */
async function keyAwayFromSeed(cluster: RedisCluster, stem: string): Promise<{ key: string; slot: number }> {
  for (let i = 0; ; i++) {
    const key = `${stem}-${i}`;
    const slot = slotOf(`{${key}}`);
    const { master } = await cluster.ownerOf(slot);
    if (master !== cluster.ports[0]) return { key, slot };
  }
}

let emulator: ImdsEmulator;
beforeAll(async () => {
  emulator = await startImdsEmulator();
});
afterAll(() => emulator?.close());

describeWithRedisServer("Redis Cluster: 3 masters, 3 replicas (private redis-servers)", () => {
  let cluster: RedisCluster;
  const RUN = `cc-cluster-${randomUUID().slice(0, 8)}`;
  const env = () => ({ AWS_EC2_METADATA_SERVICE_ENDPOINT: emulator.url });

  beforeAll(async () => {
    cluster = await startCluster();
  }, 120_000);
  afterAll(() => cluster?.stop());

  it("reads and writes keys of every slot through one seed; a record, its refresh state and its lock share a slot", async () => {
    const store = await createRedisCache({ url: cluster.url, namespace: RUN });
    try {
      const keys = Array.from({ length: 40 }, (_, i) => `spread-${i}`);
      for (const key of keys) await store.set(key, { key }, 60);
      for (const key of keys) expect(await store.get(key)).toEqual({ key });
      const masters = new Set(
        await Promise.all(keys.map(async (key) => (await cluster.ownerOf(slotOf(`{${key}}`))).master)),
      );
      expect(masters.size, "the keys live on all three masters").toBe(3);
      expect((await store.keys!()).sort()).toEqual([...keys].sort());
      const lock = await store.acquireLock!("spread-1", { ttlMs: 10_000 });
      expect(lock).toBeDefined();
      await store.set("spread-1#refresh", { v: 1 }, 60);
      const slots = await Promise.all(
        [`${RUN}::{spread-1}`, `${RUN}::{spread-1}#refresh`, `credcache:lock:${RUN}:{spread-1}`].map(
          async (name) => Number((await cluster.cli(cluster.ports[0]!, "cluster", "keyslot", name)).trim()),
        ),
      );
      expect(new Set(slots).size).toBe(1);
      // A script over all three is legal on a cluster.
      const master = (await cluster.ownerOf(slots[0]!)).master;
      const counted = await cluster.cli(
        master,
        "eval",
        "return #redis.call('mget', KEYS[1], KEYS[2], KEYS[3])",
        "3",
        `${RUN}::{spread-1}`,
        `${RUN}::{spread-1}#refresh`,
        `credcache:lock:${RUN}:{spread-1}`,
      );
      expect(counted.trim()).toBe("3");
      await lock!.release();
    } finally {
      await store.close?.();
    }
  });

  it("a cold herd of 32 processes across the cluster: one fetch from the source", async () => {
    emulator.resetStats();
    const results = await herd(32, { url: cluster.url, namespace: RUN, key: "herd" }, env());
    expect(results.filter((result) => !result.ok)).toEqual([]);
    expect(new Set(results.map((result) => result.accessKeyId)).size).toBe(1);
    expect(emulator.stats.requests.credentials).toBe(1);
  }, 120_000);
});
