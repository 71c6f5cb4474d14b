// The built-in client against a real 6-node Redis Cluster (3 masters, 3 replicas on
// loopback), with real short-lived processes resolving through the real SDK against the
// IMDS emulator: a cold herd, a slot migration (ASK), a failover, and TLS with a private CA.
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { type ImdsEmulator, startImdsEmulator } from "@credcache/imds-emulator";
import KeyvRedis from "@keyv/redis";
import { Keyv } from "keyv";
import { afterAll, beforeAll, expect, it } from "vitest";
import { outputOf } from "../../../test/support/childOutput.mjs";
import { slotOf } from "../src/clusterSlots.js";
import { createRedisCache, keyvCache, redisLock } from "../src/index.js";
import { type RedisCluster, startCluster } from "./cluster.mjs";
import { expectOneLockKey } from "./redis.js";
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
    Array.from({ length: count }, async () => {
      const child = spawn(process.execPath, [RESOLVE, JSON.stringify({ patienceMs: 15_000, ...spec })], {
        env: { ...process.env, ...env },
        stdio: ["ignore", "pipe", "pipe"],
      });
      const { code, stdout, stderr } = await outputOf(child);
      try {
        return JSON.parse(stdout) as Resolved;
      } catch {
        return { ok: false, error: `exit ${code}: ${stderr.slice(-500)}`, events: [] };
      }
    }),
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

  /** How many ASKING commands `port` has served (INFO commandstats). */
  async function askingCalls(port: number): Promise<number> {
    const stats = await cluster.cli(port, "info", "commandstats");
    return Number(/cmdstat_asking:calls=(\d+)/.exec(stats)?.[1] ?? 0);
  }
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

  it("a planted value too large to be a record, on a master other than the seed: refused, asked once", async () => {
    const { key, slot } = await keyAwayFromSeed(cluster, "planted");
    const { master } = await cluster.ownerOf(slot);
    const connections = async () =>
      Number(/total_connections_received:(\d+)/.exec(await cluster.cli(master, "info", "stats"))?.[1]);
    const store = await createRedisCache({ url: cluster.url, namespace: RUN });
    try {
      await store.set(key, "x".repeat(1024 * 1024), 60); // as a tenant would plant it; the slot table is learned too
      const before = await connections();
      await expect(store.get(key)).rejects.toThrow(/too large to be a record/);
      // One connection for the refused read, one for the count itself: never a retry loop.
      expect((await connections()) - before).toBeLessThanOrEqual(2);
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

  it("a slot moving between masters (ASK) while 16 processes resolve: none fails, at most 2 fetches", async () => {
    const { key, slot } = await keyAwayFromSeed(cluster, "migrating");
    const from = (await cluster.ownerOf(slot)).master;
    const masters = await Promise.all(
      cluster.ports.map(async (port) => ({ port, role: await cluster.cli(port, "role") })),
    );
    const to = masters.find(({ port, role }) => port !== from && role.startsWith("master"))!.port;
    const id = async (port: number) => (await cluster.cli(port, "cluster", "myid")).trim();
    const [fromId, toId] = await Promise.all([id(from), id(to)]);
    const askingBefore = await askingCalls(to);
    await cluster.cli(to, "cluster", "setslot", String(slot), "importing", fromId);
    await cluster.cli(from, "cluster", "setslot", String(slot), "migrating", toId);
    let migrating = true;
    const moveKeys = async () => {
      const names = (await cluster.cli(from, "cluster", "getkeysinslot", String(slot), "100"))
        .split("\n")
        .filter(Boolean);
      if (names.length > 0)
        await cluster.cli(from, "migrate", "127.0.0.1", String(to), "", "0", "5000", "KEYS", ...names);
    };
    // Keys move while the processes run, as redis-cli --cluster reshard moves them.
    const mover = (async () => {
      while (migrating) {
        await moveKeys();
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    emulator.resetStats();
    try {
      const results = await herd(16, { url: cluster.url, namespace: RUN, key }, env());
      console.info(
        `[cluster slot migration] 16 processes, ${emulator.stats.requests.credentials} fetch(es), ${(await askingCalls(to)) - askingBefore} ASKING`,
      );
      expect(results.filter((result) => !result.ok)).toEqual([]);
      expect(emulator.stats.requests.credentials).toBeGreaterThanOrEqual(1);
      expect(emulator.stats.requests.credentials).toBeLessThanOrEqual(2);
      expect(await askingCalls(to), "the processes were sent on with ASK").toBeGreaterThan(askingBefore);
    } finally {
      migrating = false;
      await mover;
      await moveKeys();
      for (const port of masters.filter(({ role }) => role.startsWith("master")).map(({ port }) => port)) {
        await cluster.cli(port, "cluster", "setslot", String(slot), "node", toId);
      }
      await cluster.settled();
    }
    // After the move, a new process finds the record where the slot now lives: no fetch.
    emulator.resetStats();
    const [after] = await herd(1, { url: cluster.url, namespace: RUN, key }, env());
    expect(after).toMatchObject({ ok: true });
    expect(emulator.stats.requests.credentials).toBe(0);
  }, 180_000);

  for (const how of ["CLUSTER FAILOVER on its replica", "its process killed"] as const) {
    it(`a failover of the master holding the key's slot (${how}) while 16 processes resolve: none fails, at most 2 fetches`, async () => {
      const { key, slot } = await keyAwayFromSeed(cluster, `failover-${how.length}`);
      const { master, replica } = await cluster.ownerOf(slot);
      expect(replica).toBeDefined();
      emulator.resetStats();
      const resolving = herd(16, { url: cluster.url, namespace: RUN, key }, env());
      // Once the first of them has written (or at once if they are slow to start), fail the master over.
      const deadline = Date.now() + 10_000;
      while (emulator.stats.requests.credentials === 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      if (how === "its process killed") cluster.kill(master);
      else await cluster.cli(replica!, "cluster", "failover");
      const results = await resolving;
      console.info(
        `[cluster failover: ${how}] 16 processes, ${emulator.stats.requests.credentials} fetch(es)`,
      );
      expect(results.filter((result) => !result.ok)).toEqual([]);
      expect(emulator.stats.requests.credentials).toBeGreaterThanOrEqual(1);
      expect(emulator.stats.requests.credentials).toBeLessThanOrEqual(2);
      await cluster.settled();
      expect((await cluster.ownerOf(slot)).master, "the replica serves the slot now").toBe(replica);
    }, 180_000);
  }

  it("keyvCache with hashTags on @keyv/redis over a node-redis cluster client, with redisLock: shares records and locks with createRedisCache", async () => {
    const keyvRedis = new KeyvRedis(
      { rootNodes: [{ url: cluster.url }], defaults: { socket: { reconnectStrategy: false } } },
      { throwOnConnectError: true, throwOnErrors: true },
    );
    const keyv = new Keyv({ store: keyvRedis, namespace: RUN, useKeyPrefix: false, throwOnErrors: true });
    const viaKeyv = keyvCache(keyv, {
      lock: redisLock(() => keyvRedis.getClient(), { namespace: RUN }),
      hashTags: true,
    });
    const builtIn = await createRedisCache({ url: cluster.url, namespace: RUN });
    try {
      for (let i = 0; i < 12; i++) {
        await viaKeyv.set(`node-redis-${i}`, { i }, 60);
        expect(await builtIn.get(`node-redis-${i}`)).toEqual({ i });
      }
      await expectOneLockKey(viaKeyv, builtIn, "node-redis-3");
    } finally {
      await keyv.disconnect();
      await builtIn.close?.();
    }
  });
});

describeWithRedisServer(
  "Redis Cluster over TLS only, certificates from a private CA (private redis-servers)",
  () => {
    let cluster: RedisCluster;
    const RUN = `cc-cluster-tls-${randomUUID().slice(0, 8)}`;

    beforeAll(async () => {
      cluster = await startCluster({ tls: true });
    }, 120_000);
    afterAll(() => cluster?.stop());

    it("without the CA trusted, every node is refused (a cache error) and credentials still come from the source", async () => {
      const store = await createRedisCache({ url: cluster.url, namespace: RUN });
      try {
        await expect(store.get("k")).rejects.toThrow(
          /cannot reach Redis at localhost:\d+ \(\w*(SELF_SIGNED|UNABLE_TO_GET_ISSUER|UNABLE_TO_VERIFY)\w*\)/,
        );
      } finally {
        await store.close?.();
      }
    });

    it("with the CA trusted (NODE_EXTRA_CA_CERTS): a cold herd of 8 processes through one TLS seed makes one fetch", async () => {
      const { key } = await keyAwayFromSeed(cluster, "tls-herd");
      emulator.resetStats();
      const results = await herd(
        8,
        { url: cluster.url, namespace: RUN, key },
        {
          AWS_EC2_METADATA_SERVICE_ENDPOINT: emulator.url,
          NODE_EXTRA_CA_CERTS: cluster.caFile!,
        },
      );
      expect(results.filter((result) => !result.ok)).toEqual([]);
      expect(
        results.every((result) => !result.events.includes("cache-error")),
        JSON.stringify(results),
      ).toBe(true);
      expect(emulator.stats.requests.credentials).toBe(1);
    }, 120_000);
  },
);
