#!/usr/bin/env node
// `pnpm demo`: drains a queue with waves of short-lived worker processes, once per cache
// backend, against a real SQS-compatible server and an IMDS emulator, both in-process.
// Nothing to configure. `--fault` replays the incident: IMDS throttles and hangs.
//
//   node examples/sqs-consumer/demo.mjs [--fault] [--procs 10] [--waves 4] [--messages N]
//                                       [--backends none,memory,file,sqlite,redis,serve]
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { startImdsEmulator } from "@credcache/imds-emulator";
import { createCredentials } from "./src/credentials.mjs";
import { startLocalSqs } from "./src/localSqs.mjs";
import { isRedisReachable } from "./src/redisCheck.mjs";
import { runWorkers } from "./src/runWorkers.mjs";

const { values: flags } = parseArgs({
  // `pnpm demo -- --fault` passes the `--` on; npm and pnpm users both type it.
  args: process.argv.slice(2).filter((arg) => arg !== "--"),
  options: {
    fault: { type: "boolean", default: false },
    procs: { type: "string", default: "10" },
    waves: { type: "string", default: "4" },
    messages: { type: "string" },
    backends: { type: "string", default: "none,memory,file,sqlite,redis,serve" },
    "redis-url": { type: "string", default: "redis://127.0.0.1:6379" },
  },
});
const PROCS = Number(flags.procs);
const WAVES = Number(flags.waves);
const PER_PROCESS = 5;
const MESSAGES = Number(flags.messages ?? PROCS * WAVES * PER_PROCESS);
const FAULT = flags.fault === true;
/** With --fault, the incident covers these first waves; the rest is the recovery. */
const FAULT_WAVES = Math.max(1, Math.ceil(WAVES / 2));
/**
 * The incident: IMDS answers 429 to part of the credential reads and never answers part of
 * the role reads, so the SDK's 1000 ms timeout fires (EC2 drops throttled packets: a
 * throttled IMDS looks like a timeout).
 */
const INCIDENT = {
  role: { hang: /** @type {const} */ (true), probability: 0.35 },
  credentials: { status: 429, probability: 0.5 },
};

const wanted = flags.backends.split(",").map((b) => b.trim());
const redisUp = wanted.includes("redis") ? await isRedisReachable(flags["redis-url"]) : false;
const scratch = mkdtempSync(join(tmpdir(), "credcache-demo-"));
const namespace = `credcache-demo-${process.pid}-${Date.now().toString(36)}`;

/** @type {Record<string, { url: string, shared: boolean, note?: string }>} */
const BACKENDS = {
  none: { url: "none", shared: false, note: "SDK alone" },
  memory: { url: "memory:", shared: false, note: "per process" },
  file: { url: `file://${join(scratch, "file-cache")}`, shared: true },
  sqlite: { url: `sqlite://${join(scratch, "credcache.db")}`, shared: true },
  redis: { url: `${flags["redis-url"]}?namespace=${namespace}`, shared: true, note: "keyv" },
  serve: { url: "serve", shared: true, note: "credcache serve, SDK container provider" },
};
/** The built CLI (`pnpm demo` builds it first). */
const CLI_BIN = fileURLToPath(new URL("../../packages/cli/dist/bin.cjs", import.meta.url));
const backends = wanted.filter((name) => {
  if (!(name in BACKENDS))
    throw new Error(`unknown backend "${name}"; use ${Object.keys(BACKENDS).join(",")}`);
  return name !== "redis" || redisUp;
});

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
const imds = await startImdsEmulator();
const sqs = await startLocalSqs();
// The demo process itself pre-warms shared caches with the same key the workers use.
process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = imds.url;

// ---- progress ----
const totalRuns = backends.length * WAVES * PROCS;
let finished = 0;
const tty = process.stderr.isTTY === true;
function progress(/** @type {string} */ label) {
  if (!tty) return;
  const width = 30;
  const filled = Math.round((finished / totalRuns) * width);
  process.stderr.write(
    `\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${finished}/${totalRuns} worker processes  ${label.padEnd(28)}`,
  );
}
function note(/** @type {string} */ line) {
  if (tty) process.stderr.write("\r\x1b[K");
  process.stderr.write(`${line}\n`);
}

/** @param {number[]} values @param {number} p */
function percentile(values, p) {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** Resolves credentials once through the backend, as a worker would, so the shared cache is warm. */
async function prewarm(/** @type {string} */ url) {
  const credentials = await createCredentials({ backend: { kind: "url", url } });
  await credentials.provider();
  await credentials.close();
}

/**
 * Starts `credcache serve --source imds` on a free loopback port. Resolves, once it serves,
 * to the two variables that point any SDK at it, and a stop function.
 */
async function startServe() {
  const dir = join(scratch, "serve");
  mkdirSync(dir, { mode: 0o700 });
  const tokenFile = join(dir, "token");
  const args = ["serve", "--source", "imds", "--cache", `file://${join(dir, "cache")}`];
  args.push("--token-file", tokenFile, "--listen", "127.0.0.1:0");
  const child = spawn(process.execPath, [CLI_BIN, ...args], {
    env: { ...process.env, AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  const exited = new Promise((resolve) => child.on("close", resolve));
  const url = await new Promise((resolve, reject) => {
    child.stderr.setEncoding("utf8").on("data", (/** @type {string} */ chunk) => {
      stderr += chunk;
      const ready = /ready on (http:\/\/127\.0\.0\.1:\d+)\//.exec(stderr);
      if (ready) resolve(ready[1]);
    });
    exited.then((code) => reject(new Error(`credcache serve exited with ${code}: ${stderr.trim()}`)));
  });
  return {
    env: {
      AWS_CONTAINER_CREDENTIALS_FULL_URI: `${url}/creds/default`,
      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: tokenFile,
    },
    stop: async () => {
      child.kill("SIGTERM");
      const code = await exited;
      if (code !== 0) throw new Error(`credcache serve exited with ${code}: ${stderr.trim()}`);
    },
  };
}

/** @param {string} name */
async function runBackend(name) {
  const backend = BACKENDS[/** @type {keyof typeof BACKENDS} */ (name)];
  const queueUrl = await sqs.createQueue(`demo-${name}`);
  const sent = await sqs.enqueue(queueUrl, MESSAGES);
  let prewarmed = false;
  /** @type {Awaited<ReturnType<typeof startServe>> | undefined} */
  let server;
  // The server fetches once when it starts: with --fault, before the incident.
  if (FAULT && backend.shared) {
    if (name === "serve") server = await startServe();
    else await prewarm(backend.url);
    prewarmed = true;
  }
  imds.resetStats();
  if (name === "serve" && !server) server = await startServe();
  const env = {
    SQS_QUEUE_URL: queueUrl,
    SQS_ENDPOINT: sqs.endpoint,
    AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url,
    CREDCACHE_URL: backend.url,
    ...server?.env,
  };
  const common = [
    "--stop-when-empty",
    "--wait-time-seconds",
    "1",
    "--visibility-timeout",
    "30",
    "--auth-error-timeout-ms",
    "250",
    "--max-time",
    "30",
  ];
  const share = ["--max-messages", String(Math.ceil(MESSAGES / (PROCS * WAVES)))];
  const started = performance.now();
  /** @type {import("./src/runWorkers.mjs").WorkerResult[]} */
  const results = [];
  for (let wave = 1; wave <= WAVES; wave++) {
    if (FAULT) imds.setFaults(wave <= FAULT_WAVES ? INCIDENT : undefined);
    const label = `${name} wave ${wave}/${WAVES}${FAULT && wave <= FAULT_WAVES ? " (incident)" : ""}`;
    progress(label);
    // The last wave drains whatever is left (after an incident, more than its share).
    const args = wave < WAVES ? [...share, ...common] : common;
    const wave_ = await runWorkers(PROCS, args, env, {
      // A worker stops itself after --max-time 30; the kill is only for a wedged one.
      timeoutMs: 120_000,
      onExit: () => {
        finished++;
        progress(label);
      },
    });
    results.push(...wave_);
    if (!tty) note(`  ${label}: ${finished}/${totalRuns} worker processes done`);
  }
  imds.setFaults(undefined);
  const wallMs = performance.now() - started;
  await server?.stop();

  const reports = results.map((r) => r.report).filter(Boolean);
  const ids = reports.flatMap((r) => r.messageIds);
  const unique = new Set(ids);
  const depth = await sqs.depth(queueUrl);
  const errorLines = results.flatMap((r) =>
    r.stderr.split("\n").filter((line) => line.includes("credential error")),
  );
  const failed = results.filter((r) => r.code !== 0 || !r.report);
  return {
    name,
    note: backend.note,
    prewarmed,
    processes: results.length,
    failedProcesses: failed.length,
    sent: sent.length,
    processed: ids.length,
    duplicates: ids.length - unique.size,
    unknown: [...unique].filter((id) => !sent.includes(id)).length,
    left: depth.total,
    credentialFetches: imds.stats.credentialFetches,
    imdsRequests: imds.stats.requests.total,
    throttled: imds.stats.statuses[429] ?? 0,
    hung: imds.stats.hangs,
    credentialErrors: reports.reduce((n, r) => n + r.credentialErrors, 0),
    storeErrors: reports.reduce((n, r) => n + (r.cache?.cacheErrors ?? 0), 0),
    lockWaits: reports.reduce((n, r) => n + (r.cache?.lockWaits ?? 0), 0),
    failures: failed.map(
      (r) =>
        `exit ${r.code ?? r.signal}:\n      ${r.stderr.trim().split("\n").slice(0, 12).join("\n      ")}`,
    ),
    errorLines,
    ttfc: reports.map((r) => r.firstCredentialMs).filter((v) => typeof v === "number"),
    wallMs,
  };
}

const fmtMs = (/** @type {number} */ ms) => (Number.isFinite(ms) ? `${Math.round(ms)} ms` : "–");

function printTable(/** @type {Awaited<ReturnType<typeof runBackend>>[]} */ rows) {
  const headers = [
    "backend",
    "processes",
    "messages processed",
    "IMDS credential fetches",
    "IMDS requests",
    "credential errors",
    "first credential p50",
    "p99",
    "wall time",
  ];
  const body = rows.map((r) => [
    r.note ? `${r.name} (${r.note})` : r.name,
    String(r.processes),
    `${r.processed}/${r.sent}${r.duplicates ? ` (${r.duplicates} dup)` : ""}`,
    String(r.credentialFetches),
    String(r.imdsRequests),
    String(r.credentialErrors),
    fmtMs(percentile(r.ttfc, 50)),
    fmtMs(percentile(r.ttfc, 99)),
    `${(r.wallMs / 1000).toFixed(1)} s`,
  ]);
  const widths = headers.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]?.length ?? 0)));
  const line = (/** @type {string[]} */ cells) =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(" | ")} |`;
  console.log(line(headers));
  console.log(`|${widths.map((w, i) => (i === 0 ? "-".repeat(w + 2) : `${"-".repeat(w + 1)}:`)).join("|")}|`);
  for (const row of body) console.log(line(row));
}

let exitCode = 0;
try {
  console.log(
    `credcache demo: ${MESSAGES} messages per backend, drained by ${WAVES} waves of ${PROCS} short-lived worker processes` +
      ` (--max-messages ${Math.ceil(MESSAGES / (PROCS * WAVES))} --stop-when-empty).`,
  );
  console.log(
    `IMDS emulator ${imds.url}, local-aws-sqs ${sqs.endpoint}, credentials rotate every 6 h (one rotation here).`,
  );
  if (FAULT) {
    console.log(
      `--fault: during waves 1-${FAULT_WAVES} IMDS hangs on ${INCIDENT.role.probability * 100}% of role reads (the SDK times out after 1000 ms)` +
        ` and answers 429 to ${INCIDENT.credentials.probability * 100}% of credential reads; shared caches were warm before the incident.`,
    );
  }
  if (wanted.includes("redis") && !redisUp) {
    note(`note: no Redis at ${flags["redis-url"]}; skipping the redis backend (start one to include it).`);
  }
  const rows = [];
  for (const name of backends) rows.push(await runBackend(name));
  if (tty) process.stderr.write("\r\x1b[K");
  console.log("");
  printTable(rows);
  console.log("");

  const perProcess = rows.filter((r) => !BACKENDS[/** @type {keyof typeof BACKENDS} */ (r.name)].shared);
  const shared = rows.filter((r) => BACKENDS[/** @type {keyof typeof BACKENDS} */ (r.name)].shared);
  if (!FAULT) {
    for (const r of shared) {
      const why =
        r.credentialFetches === 1
          ? "one per rotation, whatever the number of processes"
          : `one per rotation plus ${r.credentialFetches - 1}; meanwhile ${r.storeErrors} store calls failed or ` +
            `timed out and ${r.lockWaits} processes waited for the lock`;
      console.log(
        `${r.name}: ${r.credentialFetches} credential fetch${r.credentialFetches === 1 ? "" : "es"} for ${r.processes} processes (${why}).`,
      );
    }
    for (const r of perProcess) {
      console.log(
        `${r.name}: ${r.credentialFetches} credential fetches for ${r.processes} processes (one per process).`,
      );
    }
  } else {
    for (const r of shared) {
      console.log(
        `${r.name}: ${r.credentialErrors} credential errors, ${r.processed}/${r.sent} processed` +
          ` (pre-warmed before the incident; ${r.credentialFetches} fetches during it).`,
      );
    }
    for (const r of perProcess) {
      console.log(
        `${r.name}: ${r.credentialErrors} credential errors, ${r.processed}/${r.sent} processed` +
          ` (IMDS answered 429 to ${r.throttled} requests and left ${r.hung} hanging).`,
      );
      const samples = [...new Set(r.errorLines.map((l) => l.replace(/^\[sqs-worker \d+\] /, "")))].slice(
        0,
        3,
      );
      for (const s of samples) console.log(`    e.g. ${r.errorLines.find((l) => l.endsWith(s))}`);
    }
  }
  for (const r of rows) {
    const problems = [];
    if (r.failedProcesses) problems.push(`${r.failedProcesses} worker processes failed`);
    if (r.duplicates) problems.push(`${r.duplicates} messages processed twice`);
    if (r.unknown) problems.push(`${r.unknown} unknown message ids`);
    if (r.left) problems.push(`${r.left} messages left in the queue`);
    if (problems.length) {
      console.log(`${r.name}: ${problems.join(", ")}`);
      for (const f of r.failures.slice(0, 2)) console.log(`    ${f}`);
      if (!FAULT) exitCode = 1;
    }
  }
} finally {
  if (backends.includes("redis")) {
    // Drop what the demo wrote, under its own namespace.
    const core = await import("@credcache/core");
    const { createCache } = await import("@credcache/config");
    const cache = await createCache(BACKENDS.redis.url);
    const key = core.instanceMetadataKey({ env: { AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url } });
    await cache.remove(key).catch(() => {});
    await cache.close?.();
  }
  await sqs.close();
  await imds.close();
  rmSync(scratch, { recursive: true, force: true });
}
process.exitCode = exitCode;
