#!/usr/bin/env node
// Start-up cost of the Redis store for a short-lived process (issue 13): the built-in RESP
// client of createRedisCache against the Keyv path it replaced (keyvCache over keyv +
// @keyv/redis + redisLock, which loads @redis/client), and against the file store.
//
// 1. Added start-up: a child that imports @credcache/keyv, builds the store and does one
//    get (then closes), timed from spawn to exit, beside `node -e 0`.
// 2. Time to first credential: a child that resolves credentials once through fromCache
//    around the SDK's own fromInstanceMetadata(), against the IMDS emulator, on a warm
//    store (one record in it, as for every process after the first), beside the SDK alone.
//    ttfc counts from process start (performance.timeOrigin), node start-up included;
//    cpu is the child's user + system time up to that point.
//
// Every case runs once per round, in turn, so a noisy machine slows all of them alike.
//
//   node bench/redis-startup.mjs [--rounds 15] [--redis-url redis://127.0.0.1:6379]
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { percentile } from "./measure.mjs";

const SELF = fileURLToPath(import.meta.url);
// Children learn their case by environment.
const { env } = process;

// ---- child side -------------------------------------------------------------------------

/** The store of `kind`, built as a user would: createCache for URLs, the Keyv path by hand. */
async function buildStore(kind, url, namespace) {
  if (kind === "keyv") {
    const [{ keyvCache, redisLock }, { Keyv }, { default: KeyvRedis }] = await Promise.all([
      import("@credcache/keyv"),
      import("keyv"),
      import("@keyv/redis"),
    ]);
    // What createRedisCache built before it had its own client.
    const keyvRedis = new KeyvRedis(
      { url, socket: { connectTimeout: 1_000, reconnectStrategy: false } },
      { throwOnConnectError: true, throwOnErrors: true },
    );
    const keyv = new Keyv({ store: keyvRedis, namespace, useKeyPrefix: false, throwOnErrors: true });
    const store = keyvCache(keyv, { lock: redisLock(() => keyvRedis.getClient(), { namespace }) });
    store.close = () => keyvRedis.disconnect();
    return store;
  }
  if (kind === "builtin") {
    const { createRedisCache } = await import("@credcache/keyv");
    return createRedisCache({ url, namespace });
  }
  const { createCache } = await import("@credcache/config");
  return createCache(url);
}

async function child() {
  const { BENCH_MODE: mode, BENCH_KIND: kind, BENCH_URL: url, BENCH_NS: namespace } = env;
  if (mode === "startup") {
    const store = await buildStore(kind, url, namespace);
    await store.get("k");
    await store.close?.();
    return;
  }
  const { performance } = await import("node:perf_hooks");
  const { fromInstanceMetadata } = await import("@aws-sdk/credential-providers");
  let provider = fromInstanceMetadata();
  let store;
  if (kind !== "none") {
    const core = await import("@credcache/core");
    store = await buildStore(kind, url, namespace);
    provider = core.fromCache({ provider, cache: store, key: core.instanceMetadataKey() });
  }
  await provider();
  const ttfcMs = performance.now();
  const cpu = process.cpuUsage();
  process.stdout.write(JSON.stringify({ ttfcMs, cpuMs: (cpu.user + cpu.system) / 1000 }));
  provider.close?.();
  await store?.close?.();
}

// ---- parent side ------------------------------------------------------------------------

function run(args, env) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const proc = spawn(process.execPath, args, {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    proc.stdout.on("data", (chunk) => (stdout += chunk));
    proc.stderr.on("data", (chunk) => (stderr += chunk));
    proc.on("exit", (code) => {
      const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
      if (code !== 0) reject(new Error(`${args.join(" ")} exited ${code}: ${stderr.slice(-500)}`));
      else resolve({ wallMs, out: stdout ? JSON.parse(stdout) : {} });
    });
  });
}

async function parent() {
  const { values: flags } = parseArgs({
    args: process.argv.slice(2).filter((arg) => arg !== "--"),
    options: {
      rounds: { type: "string", default: "15" },
      "redis-url": { type: "string", default: "redis://127.0.0.1:6379" },
    },
  });
  const rounds = Number(flags.rounds);
  const redisUrl = flags["redis-url"];
  const namespace = `credcache-bench-startup-${process.pid}`;
  const scratch = mkdtempSync(join(tmpdir(), "credcache-startup-"));
  const { startImdsEmulator } = await import("@credcache/imds-emulator");
  const imds = await startImdsEmulator();
  const fmt = (ms) => `${ms.toFixed(1)} ms`;
  try {
    // 1. Added start-up of import + store + one get.
    const startup = [
      { name: "node -e 0", args: ["-e", "0"] },
      { name: "keyv + @keyv/redis", args: [SELF], env: { BENCH_MODE: "startup", BENCH_KIND: "keyv" } },
      { name: "built-in client", args: [SELF], env: { BENCH_MODE: "startup", BENCH_KIND: "builtin" } },
    ];
    const ttfc = [
      { name: "SDK alone", kind: "none" },
      { name: "file store", kind: "url", url: `file://${join(scratch, "cache")}` },
      { name: "redis, keyv + @keyv/redis", kind: "keyv", url: redisUrl },
      { name: "redis, built-in client", kind: "builtin", url: redisUrl },
    ];
    const wall = new Map(startup.map((c) => [c.name, []]));
    const first = new Map(ttfc.map((c) => [c.name, { ttfc: [], cpu: [] }]));
    const ttfcEnv = (c) => ({
      BENCH_MODE: "ttfc",
      BENCH_KIND: c.kind,
      BENCH_URL: c.url ?? "",
      BENCH_NS: namespace,
      AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
    });
    // Warm-up: fills the stores (the rest are warm hits) and the OS file cache.
    for (const c of startup) await run(c.args, { BENCH_URL: redisUrl, BENCH_NS: namespace, ...c.env });
    for (const c of ttfc) await run([SELF], ttfcEnv(c));
    for (let round = 0; round < rounds; round++) {
      for (const c of startup) {
        const { wallMs } = await run(c.args, { BENCH_URL: redisUrl, BENCH_NS: namespace, ...c.env });
        wall.get(c.name).push(wallMs);
      }
      for (const c of ttfc) {
        const { out } = await run([SELF], ttfcEnv(c));
        first.get(c.name).ttfc.push(out.ttfcMs);
        first.get(c.name).cpu.push(out.cpuMs);
      }
    }
    const base = percentile(wall.get("node -e 0"), 50);
    console.log(
      `## Added start-up: import @credcache/keyv + store + one get (${rounds} rounds, interleaved)\n`,
    );
    console.log("| case | wall p50 | wall p90 | added over node -e 0 (p50) |");
    console.log("| --- | --- | --- | --- |");
    for (const c of startup) {
      const s = wall.get(c.name);
      const p50 = percentile(s, 50);
      console.log(
        `| ${c.name} | ${fmt(p50)} | ${fmt(percentile(s, 90))} | ${c.name === "node -e 0" ? "–" : fmt(p50 - base)} |`,
      );
    }
    const file = percentile(first.get("file store").ttfc, 50);
    console.log(
      `\n## Time to first credential, warm store, fromCache(fromInstanceMetadata()) (${rounds} rounds)\n`,
    );
    console.log("| case | ttfc p50 | ttfc p90 | cpu p50 | ttfc p50 / file store |");
    console.log("| --- | --- | --- | --- | --- |");
    for (const c of ttfc) {
      const { ttfc: t, cpu } = first.get(c.name);
      const p50 = percentile(t, 50);
      console.log(
        `| ${c.name} | ${fmt(p50)} | ${fmt(percentile(t, 90))} | ${fmt(percentile(cpu, 50))} | ${(p50 / file).toFixed(2)}x |`,
      );
    }
  } finally {
    await imds.close?.();
    rmSync(scratch, { recursive: true, force: true });
    // The records this run wrote, through the client that wrote them.
    const { createRedisCache } = await import("@credcache/keyv");
    const store = await createRedisCache({ url: redisUrl, namespace });
    for (const key of await store.keys()) await store.remove(key);
    await store.close();
  }
}

if (env.BENCH_MODE) await child();
else await parent();
