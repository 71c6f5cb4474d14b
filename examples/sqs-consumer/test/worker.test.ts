// The example worker, end to end: real worker processes (plain node, built packages), a
// real SQS-compatible server (local-aws-sqs), the IMDS emulator, real files, SQLite and
// Redis. Counts are asserted, never timings.
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createCache } from "@credcache/config";
import { instanceMetadataKey } from "@credcache/core";
import { type ImdsEmulator, startImdsEmulator } from "@credcache/imds-emulator";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { itWithRedis, TEST_REDIS_URL } from "../../../test/support/redis.mjs";
import { startLocalSqs } from "../src/localSqs.mjs";
import { runWorker, runWorkers, type WorkerResult } from "../src/runWorkers.mjs";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
/**
 * The machine is shared: a worker may sit unscheduled for seconds. These tests assert
 * counts, so they give IMDS and the store time instead of meeting the defaults' 1 s
 * timeouts (which the demo and the benchmark keep).
 */
const PATIENT = { CREDCACHE_CACHE_TIMEOUT_MS: "20000" };
const PATIENT_ARGS = ["--imds-timeout-ms", "20000"];

const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const REDIS_URL = TEST_REDIS_URL ?? "redis://test-redis-not-started.invalid";

let imds: ImdsEmulator;
let sqs: Awaited<ReturnType<typeof startLocalSqs>>;
let scratch: string;

beforeAll(async () => {
  // Worker processes run plain node against the built packages.
  const missing = ["core", "fs", "sqlite", "keyv", "memory"].filter(
    (p) => !existsSync(join(ROOT, "packages", p, "dist", "index.js")),
  );
  if (missing.length) throw new Error(`build first (pnpm build): no dist for ${missing.join(", ")}`);
  imds = await startImdsEmulator();
  sqs = await startLocalSqs();
});

afterAll(async () => {
  await sqs?.close();
  await imds?.close();
});

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), "credcache-sqs-test-"));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
afterEach(() => {
  imds.setFaults(undefined);
});

let queueCounter = 0;
const freshDir = (): string => mkdtempSync(join(scratch, "t-"));

/** The key the instance-metadata preset uses for this emulator on this host. */
const imdsKey = () => instanceMetadataKey({ env: { AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url } });

interface Drain {
  results: WorkerResult[];
  sent: string[];
  processed: string[];
  fetches: number;
  left: { total: number; inFlight: number };
}

/** Enqueues `messages` jobs and drains them with `workers` processes started at once. */
async function drain(
  workers: number,
  messages: number,
  env: Record<string, string>,
  args: string[] = ["--stop-when-empty"],
): Promise<Drain> {
  const queueUrl = await sqs.createQueue(`test-${process.pid}-${++queueCounter}`);
  const sent = await sqs.enqueue(queueUrl, messages);
  imds.resetStats();
  const results = await runWorkers(
    workers,
    ["--wait-time-seconds", "1", "--visibility-timeout", "60", "--max-time", "60", ...PATIENT_ARGS, ...args],
    {
      SQS_QUEUE_URL: queueUrl,
      SQS_ENDPOINT: sqs.endpoint,
      AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url,
      CREDCACHE_URL: "",
      CREDCACHE_CONFIG: "",
      CREDCACHE_STORE: "",
      ...PATIENT,
      ...env,
    },
    { timeoutMs: 110_000 },
  );
  return {
    results,
    sent,
    processed: results.flatMap((r) => r.report?.messageIds ?? []),
    fetches: imds.stats.credentialFetches,
    left: await sqs.depth(queueUrl),
  };
}

/** Every message processed exactly once, deleted, by workers that all exited cleanly. */
function expectExactlyOnce(run: Drain): void {
  for (const r of run.results) {
    expect(r.code, r.stderr).toBe(0);
    expect(r.report, r.stderr).toBeDefined();
    expect(r.report.credentialErrors, r.stderr).toBe(0);
  }
  expect(run.processed).toHaveLength(run.sent.length); // no duplicates
  expect(new Set(run.processed)).toEqual(new Set(run.sent)); // none lost
  expect(run.left).toEqual({ total: 0, inFlight: 0 }); // all deleted
  for (const r of run.results) expect(r.report.firstCredentialMs).toBeGreaterThan(0);
}

/** {@link drain}, then: every message handled exactly once, and one IMDS fetch for all the workers. */
async function drainWithOneFetch(
  workers: number,
  messages: number,
  env: Record<string, string>,
): Promise<Drain> {
  const run = await drain(workers, messages, env);
  expectExactlyOnce(run);
  expect(run.fetches).toBe(1);
  return run;
}

async function storedRecord(url: string): Promise<unknown> {
  const cache = await createCache(url);
  try {
    return await cache.get(imdsKey());
  } finally {
    await cache.close?.();
  }
}

describe("sqs worker", { timeout: 120_000 }, () => {
  it("file backend: workers drain the queue exactly once with one IMDS fetch, and the cache dir holds the record", async () => {
    const dir = join(freshDir(), "cache");
    const url = `file://${dir}`;
    const run = await drainWithOneFetch(4, 16, { CREDCACHE_URL: url });
    expect(readdirSync(dir).length).toBeGreaterThan(0);
    expect(await storedRecord(url)).toMatchObject({ v: 1, source: "imds" });
    expect(run.results.map((r) => r.report.backend)).toEqual(Array(4).fill(url));
  });

  it("sqlite backend: one IMDS fetch for all workers, and the database has the row", async () => {
    const path = join(freshDir(), "credcache.db");
    const url = `sqlite://${path}`;
    await drainWithOneFetch(4, 16, { CREDCACHE_URL: url });
    expect(existsSync(path)).toBe(true);
    expect(await storedRecord(url)).toMatchObject({ v: 1, source: "imds" });
  });

  itWithRedis("redis backend (keyv): one IMDS fetch for all workers, and the key exists", async () => {
    const url = `${REDIS_URL}/?namespace=credcache-sqs-test-${process.pid}-${Date.now()}`;
    try {
      await drainWithOneFetch(4, 16, { CREDCACHE_URL: url });
      expect(await storedRecord(url)).toMatchObject({ v: 1, source: "imds" });
    } finally {
      const cache = await createCache(url);
      await cache.remove(imdsKey());
      await cache.close?.();
    }
  });

  it("a Laravel-style config file: the named default store is used, the others are not", async () => {
    const dir = freshDir();
    const config = join(dir, "cache.json");
    writeFileSync(
      config,
      JSON.stringify({
        default: "sqlite",
        stores: {
          file: { driver: "file", dir: join(dir, "file-cache") },
          sqlite: { driver: "sqlite", path: join(dir, "credcache.db") },
        },
      }),
    );
    const run = await drainWithOneFetch(3, 9, { CREDCACHE_CONFIG: config });
    expect(await storedRecord(`sqlite://${join(dir, "credcache.db")}`)).toMatchObject({ v: 1 });
    expect(existsSync(join(dir, "file-cache"))).toBe(false);
    expect(run.results[0]!.report.backend).toBe("config:sqlite (sqlite)");

    // --store picks another one, like Cache::store('file').
    const other = await drain(2, 4, {}, ["--stop-when-empty", "--config", config, "--store", "file"]);
    expectExactlyOnce(other);
    expect(readdirSync(join(dir, "file-cache")).length).toBeGreaterThan(0);
  });

  it("none (the SDK alone): one IMDS fetch per process, nothing written anywhere", async () => {
    const home = freshDir();
    const run = await drain(3, 9, {
      CREDCACHE_URL: "none",
      HOME: home,
      XDG_CACHE_HOME: join(home, ".cache"),
    });
    expectExactlyOnce(run);
    expect(run.fetches).toBe(3);
    expect(readdirSync(home)).toEqual([]);
    expect(run.results[0]!.report.backend).toBe("none");
    expect(run.results[0]!.report.cache).toBeUndefined();
  });

  it("memory: cached inside each process only, so one fetch per process", async () => {
    const run = await drain(3, 9, { CREDCACHE_URL: "memory:" });
    expectExactlyOnce(run);
    expect(run.fetches).toBe(3);
  });

  it("--once processes one message and exits; --max-messages N processes N", async () => {
    const queueUrl = await sqs.createQueue(`test-${process.pid}-${++queueCounter}`);
    const sent = await sqs.enqueue(queueUrl, 5);
    const env = {
      SQS_QUEUE_URL: queueUrl,
      SQS_ENDPOINT: sqs.endpoint,
      AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url,
      CREDCACHE_URL: "memory:",
      ...PATIENT,
    };
    const once = await runWorker(["--once", ...PATIENT_ARGS], env);
    expect(once.code, once.stderr).toBe(0);
    expect(once.report).toMatchObject({ processed: 1, exitReason: "max-messages" });
    const three = await runWorker(["--max-messages", "3", ...PATIENT_ARGS], env);
    expect(three.report).toMatchObject({ processed: 3, exitReason: "max-messages" });
    expect(await sqs.depth(queueUrl)).toEqual({ total: 1, inFlight: 0 });
    const rest = await runWorker(["--stop-when-empty", "--wait-time-seconds", "0", ...PATIENT_ARGS], env);
    expect(rest.report).toMatchObject({ processed: 1, exitReason: "empty" });
    const all = [once, three, rest].flatMap((r) => r.report.messageIds);
    expect(new Set(all)).toEqual(new Set(sent));
  });

  it("with a warm shared cache, workers keep processing while IMDS throttles and hangs", async () => {
    const url = `file://${join(freshDir(), "cache")}`;
    const warm = await drain(1, 1, { CREDCACHE_URL: url });
    expectExactlyOnce(warm);
    imds.setFaults({ role: { hang: true }, credentials: { status: 429 } });
    const run = await drain(3, 9, { CREDCACHE_URL: url });
    expectExactlyOnce(run);
    expect(imds.stats.requests.total).toBe(0);
  });

  it("a bad config exits with status 2 and says what to fix", async () => {
    const env = { SQS_QUEUE_URL: "http://127.0.0.1:9/000000000000/none", CREDCACHE_CONFIG: "" };
    const scheme = await runWorker([], { ...env, CREDCACHE_URL: "bogus://x" });
    expect(scheme.code).toBe(2);
    expect(scheme.stderr).toMatch(/Unknown cache URL scheme "bogus:"/);
    const both = await runWorker([], { ...env, CREDCACHE_URL: "memory:", CREDCACHE_CONFIG: "/x.json" });
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/CREDCACHE_URL and CREDCACHE_CONFIG are both set/);
    const store = await runWorker(["--store", "redis"], { ...env, CREDCACHE_URL: "" });
    expect(store.code).toBe(2);
    expect(store.stderr).toMatch(/pass --config too/);
  });
});
