// Each adapter's hit through a fresh fromCache (cold L1, warm store), beside the raw
// floor for the same data, measured in the same run.
import {
  closeSync,
  constants as fsc,
  fstatSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readSync,
  rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromInstanceMetadata } from "@aws-sdk/credential-providers";
import { fromCache, toRecord } from "@credcache/core";
import { fileCache } from "@credcache/fs";
import { startImdsEmulator } from "@credcache/imds-emulator";
import { createRedisCache } from "@credcache/keyv";
import { memoryCache } from "@credcache/memory";
import { sqliteCache } from "@credcache/sqlite";
import { createClient } from "@redis/client";
import Database from "better-sqlite3";
import { fmtMicros, fmtRatio, interleave, table } from "./measure.mjs";

const KEY = "bench:imds";
const record = () =>
  toRecord(
    {
      accessKeyId: "ASIABENCHBENCHBENCH1",
      secretAccessKey: "b".repeat(40),
      sessionToken: "t".repeat(900), // about the size of a real IMDS session token
      expiration: new Date(Date.now() + 6 * 3600_000),
    },
    Date.now(),
    "imds",
  );

const failingSource = async () => {
  throw new Error("the bench must hit the store, not the source");
};

/** One call of a fresh provider: cold L1, so it reads the store. */
function freshHit(cache) {
  return async () => {
    const provider = fromCache({ provider: failingSource, cache, key: KEY, proactiveRefresh: false });
    await provider();
  };
}

async function redisReachable() {
  const client = createClient({
    url: "redis://127.0.0.1:6379",
    socket: { connectTimeout: 500, reconnectStrategy: false },
  });
  client.on("error", () => {});
  try {
    await client.connect();
    await client.ping();
    return client;
  } catch {
    return undefined;
  }
}

export async function runAdapterBench({ rounds = 20 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "credcache-bench-"));
  const rows = [];
  const imds = await startImdsEmulator({ port: 0 });
  process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = imds.url;
  const sdkFetch = fromInstanceMetadata({ timeout: 2000 });
  const [imdsResult] = await interleave([{ name: "imds", run: () => sdkFetch() }], {
    rounds: 5,
    perRound: 40,
  });
  const imdsP50 = imdsResult.p50;

  const add = (adapter, hit, floor, floorName, set, target) => {
    rows.push([
      adapter,
      fmtMicros(hit.p50),
      fmtMicros(hit.p99),
      fmtMicros(set.p50),
      floorName,
      floor ? fmtMicros(floor.p50) : "–",
      floor ? fmtRatio(hit.p50 / floor.p50) : "–",
      fmtRatio(hit.p50 / imdsP50),
      target,
    ]);
  };

  /**
   * Times a hit through `cache`, the raw read of the same record beside it (the floor), and
   * a set, interleaved; the target is a hit's p50 at most `floor.max` times the floor's.
   */
  const addAgainstFloor = async (adapter, cache, floor, perRound) => {
    const [hit, floorTime, set] = await interleave(
      [
        { name: "hit", run: freshHit(cache) },
        { name: "floor", run: floor.run },
        { name: "set", run: () => cache.set(`${KEY}:w`, { ...record() }, 3600) },
      ],
      { rounds, perRound },
    );
    const ok = hit.p50 / floorTime.p50 <= floor.max;
    add(adapter, hit, floorTime, floor.name, set, `≤ ${floor.max}×: ${ok ? "PASS" : "FAIL"}`);
  };

  // memory
  {
    const cache = memoryCache();
    await cache.set(KEY, { ...record() }, 3600);
    const [hit, raw, set] = await interleave(
      [
        { name: "hit", run: freshHit(cache) },
        { name: "raw", run: () => cache.get(KEY) },
        { name: "set", run: () => cache.set(`${KEY}:w`, { ...record() }, 3600) },
      ],
      { rounds, perRound: 200 },
    );
    add("memory", hit, raw, "store.get alone", set, `≤ 2 µs: ${hit.p50 <= 2 ? "PASS" : "FAIL"}`);
  }

  // fs
  {
    const cache = fileCache({ dir: join(dir, "fs") });
    await cache.set(KEY, { ...record() }, 3600);
    const file = join(
      dir,
      "fs",
      readdirSync(join(dir, "fs")).find((f) => f.endsWith(".json")),
    );
    const buffer = Buffer.alloc(64 * 1024);
    const syncRead = () => {
      const fd = openSync(file, fsc.O_RDONLY | fsc.O_NOFOLLOW);
      try {
        const { size } = fstatSync(fd);
        const n = readSync(fd, buffer, 0, size, 0);
        return JSON.parse(buffer.toString("utf8", 0, n));
      } finally {
        closeSync(fd);
      }
    };
    await addAgainstFloor("fs", cache, { name: "sync open+fstat+read+parse", run: syncRead, max: 4 }, 100);
    await cache.close();
  }

  // sqlite
  {
    const path = join(dir, "cache.db");
    const cache = sqliteCache({ path });
    await cache.set(KEY, { ...record() }, 3600);
    const db = new Database(path, { readonly: true });
    const stmt = db.prepare("SELECT value FROM entries WHERE key = ?");
    await addAgainstFloor(
      "sqlite",
      cache,
      { name: "better-sqlite3 get+parse", run: () => JSON.parse(stmt.get(KEY).value), max: 4 },
      100,
    );
    db.close();
    await cache.close();
  }

  // keyv + redis
  const client = await redisReachable();
  if (client) {
    const namespace = `bench-${process.pid}`;
    const cache = await createRedisCache({ url: "redis://127.0.0.1:6379", namespace });
    await cache.set(KEY, { ...record() }, 3600);
    const rawKey = `${namespace}::{${KEY}}`;
    if ((await client.get(rawKey)) === null) throw new Error(`bench: expected the keyv entry at ${rawKey}`);
    await addAgainstFloor(
      "keyv + redis",
      cache,
      { name: "raw Redis GET+parse", run: async () => JSON.parse(await client.get(rawKey)), max: 1.5 },
      50,
    );
    await cache.remove(KEY);
    await cache.remove(`${KEY}:w`);
    await cache.close();
    await client.quit();
  } else {
    rows.push([
      "keyv + redis",
      "–",
      "–",
      "–",
      "Redis not reachable on 127.0.0.1:6379",
      "–",
      "–",
      "–",
      "skipped",
    ]);
  }

  await imds.close();
  rmSync(dir, { recursive: true, force: true });
  console.log("\n## Adapter hits through a fresh fromCache (cold L1, warm store), beside their floors\n");
  console.log(
    `One SDK fromInstanceMetadata fetch from the loopback emulator: p50 ${fmtMicros(imdsP50)} (p99 ${fmtMicros(imdsResult.p99)}).\n`,
  );
  const text = table(
    [
      "adapter",
      "hit p50",
      "hit p99",
      "set p50",
      "floor",
      "floor p50",
      "hit / floor",
      "hit / IMDS fetch",
      "target",
    ],
    rows,
  );
  return {
    rows,
    text: `## Adapter hits through a fresh fromCache (cold L1, warm store)\n\nOne SDK fromInstanceMetadata fetch from the loopback emulator: p50 ${fmtMicros(imdsP50)}.\n\n${text}`,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) await runAdapterBench();
