#!/usr/bin/env node
// `pnpm bench:sts`: 64 cold processes on one host with AWS_ROLE_ARN + a web identity token file
// (EKS IRSA) resolve credentials at the same moment, against the emulator's STS:
//
// 1. Cold herd: the SDK's default chain alone vs fromCachedNodeProviderChain on the file,
//    sqlite and Redis stores (a private redis-server on a free port). Counts
//    AssumeRoleWithWebIdentity calls and time to first credential (p50, p99, from process
//    start, node start-up included), each as a ratio to the SDK alone.
// 2. Throttled cold herd: STS answers `Throttling: Rate exceeded` for the first --throttle-ms
//    (5 s), then recovers. Counts processes that got credentials, STS calls (throttled and
//    answered) and compares them with the bound of the shared backoff schedule.
//
// 3. Fleet: --hosts (4) simulated hosts, each a UTS namespace with its own host name (so its own
//    host identity: machine-id/<host name>), --per-host (16) processes each, sharing one Redis:
//    web identity (one AssumeRoleWithWebIdentity for the fleet) and IMDS (one fetch per host,
//    each host under its own key). Needs `unshare` and root; skipped otherwise.
//
// Writes bench/results/sts.md.
//
//   node bench/sts.mjs [--processes 64] [--backends file,sqlite,redis] [--throttle-ms 5000] [--hosts 4] [--per-host 16]
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { REFRESH_DEFAULTS } from "@credcache/core";
import { startImdsEmulator } from "@credcache/imds-emulator";
import { redisServerOnPath, startRedisServer } from "../test/support/redisServer.mjs";
import { percentile } from "./measure.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const { values: flags } = parseArgs({
  args: process.argv.slice(2).filter((arg) => arg !== "--"),
  options: {
    processes: { type: "string", default: "64" },
    backends: { type: "string", default: "file,sqlite,redis" },
    "throttle-ms": { type: "string", default: "5000" },
    hosts: { type: "string", default: "4" },
    "per-host": { type: "string", default: "16" },
  },
});
const PROCESSES = Number(flags.processes);
const THROTTLE_MS = Number(flags["throttle-ms"]);
const ROLE = "arn:aws:iam::123456789012:role/irsa-bench";
const SUBJECT = "system:serviceaccount:bench:worker";
/** The SDK's STS client: 3 attempts per call (standard retry mode). */
const SDK_STS_ATTEMPTS = 3;

const work = mkdtempSync(join(tmpdir(), "credcache-bench-sts-"));
const part = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
const tokenFile = join(work, "token");
writeFileSync(
  tokenFile,
  `${part({ alg: "RS256" })}.${part({ iss: "https://oidc.eks.example", sub: SUBJECT, aud: "sts.amazonaws.com" })}.c2ln`,
);

/** One child; with `host`, in a UTS namespace of its own whose host name is `host` (a simulated host). */
function runChild(env, host) {
  const child = [process.execPath, join(here, "sts-child.mjs")];
  const [command, ...args] = host
    ? ["unshare", "-u", "sh", "-c", `hostname ${host} && exec "${child[0]}" "${child[1]}"`]
    : child;
  return new Promise((resolve) => {
    const proc = spawn(command, args, {
      cwd: join(here, ".."),
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    proc.stdout.setEncoding("utf8").on("data", (c) => {
      stdout += c;
    });
    proc.stderr.resume();
    const timer = setTimeout(() => proc.kill("SIGKILL"), 180_000);
    proc.on("close", () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(stdout.trim().split("\n").at(-1) ?? ""));
      } catch {
        resolve({ ok: false, error: "no report" });
      }
    });
  });
}

const sts = await startImdsEmulator({ sts: { roles: { [ROLE]: { subjects: [SUBJECT] } } } });
// A private redis-server (no persistence) on a free port; none when it is not installed.
const redis = flags.backends.includes("redis") && redisServerOnPath() ? await startRedisServer() : undefined;

const baseEnv = { ...process.env };
for (const name of Object.keys(baseEnv)) if (name.startsWith("AWS_")) delete baseEnv[name];
Object.assign(baseEnv, {
  AWS_ROLE_ARN: ROLE,
  AWS_WEB_IDENTITY_TOKEN_FILE: tokenFile,
  AWS_ROLE_SESSION_NAME: "bench",
  AWS_ENDPOINT_URL_STS: sts.url,
  AWS_REGION: "us-east-1",
  AWS_CONFIG_FILE: join(work, "no-config"),
  AWS_SHARED_CREDENTIALS_FILE: join(work, "no-credentials"),
  AWS_EC2_METADATA_DISABLED: "true",
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
});

let stores = 0;
/** A fresh, empty store of `backend`. */
function storeUrl(backend) {
  stores += 1;
  if (backend === "none") return "none";
  if (backend === "file") {
    const dir = join(work, `file-${stores}`);
    mkdirSync(dir, { mode: 0o700 });
    return `file://${dir}`;
  }
  if (backend === "sqlite") {
    const dir = join(work, `sqlite-${stores}`);
    mkdirSync(dir, { mode: 0o700 });
    return `sqlite://${dir}/creds.db`;
  }
  if (backend === "redis") return `${redis.url}?namespace=bench-${stores}`;
  throw new Error(`unknown backend ${backend}`);
}

/** One cold herd on `backend`; the STS counters of that herd alone. */
async function herd(backend, { throttleMs = 0 } = {}) {
  const env = { ...baseEnv, STS_CACHE_URL: storeUrl(backend) };
  sts.resetStats();
  sts.setFaults(throttleMs > 0 ? { sts: { throttle: true, forMs: throttleMs } } : {});
  const started = Date.now();
  const reports = await Promise.all(Array.from({ length: PROCESSES }, () => runChild(env)));
  const wallMs = Date.now() - started;
  sts.setFaults({});
  const ok = reports.filter((r) => r.ok);
  const times = ok.map((r) => r.ttfcMs);
  const { sts: counts } = sts.stats;
  const events = {};
  for (const r of reports)
    for (const [name, n] of Object.entries(r.events ?? {})) events[name] = (events[name] ?? 0) + n;
  return {
    backend,
    ok: ok.length,
    failed: reports.length - ok.length,
    errors: [...new Set(reports.filter((r) => !r.ok).map((r) => r.error))].slice(0, 2),
    calls: counts.assumeRoleWithWebIdentity + counts.throttled + counts.refused,
    answered: counts.assumeRoleWithWebIdentity,
    throttled: counts.throttled,
    p50: percentile(times, 50),
    p99: percentile(times, 99),
    wallMs,
    source: reports.find((r) => r.source)?.source,
    storeErrors: Object.entries(events)
      .filter(([name]) => name.startsWith("cache-error"))
      .map(([name, n]) => `${name.slice(12)} ${n}`)
      .join(", "),
  };
}

const backends = ["none", ...flags.backends.split(",").filter((b) => b !== "redis" || redis)];
const fmt = (ms) => (Number.isFinite(ms) ? `${Math.round(ms)} ms` : "n/a");
const ratio = (a, b) =>
  Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}x` : "n/a";
const label = (b) => (b === "none" ? "SDK default chain alone" : `cached chain, ${b}`);

console.error(
  `bench:sts: ${PROCESSES} cold processes per backend, ${cpus().length} cores, load ${loadavg()[0].toFixed(2)}`,
);
const cold = [];
for (const backend of backends) {
  cold.push(await herd(backend));
  console.error(`  cold ${backend}: done`);
}
// The throttling herd: STS refuses for the first THROTTLE_MS of the herd.
const throttled = [];
for (const backend of backends) {
  throttled.push(await herd(backend, { throttleMs: THROTTLE_MS }));
  console.error(`  throttled ${backend}: done`);
}

/**
 * The most STS calls the shared backoff schedule allows while STS refuses for `throttleMs`:
 * the holder's first attempt and its `holderRetries`, one more attempt per backoff step that
 * ends inside the window, and the one that succeeds; each attempt is up to the SDK's 3 calls.
 */
function backoffBound(throttleMs) {
  let attempts = 1 + REFRESH_DEFAULTS.holderRetries;
  let at = 0;
  for (
    let step = REFRESH_DEFAULTS.retryBaseMs;
    at + step < throttleMs;
    step = Math.min(step * 2, REFRESH_DEFAULTS.retryMaxMs)
  ) {
    at += step;
    attempts += 1;
  }
  return (attempts + 1) * SDK_STS_ATTEMPTS;
}
const bound = backoffBound(THROTTLE_MS);

/** `unshare -u` works here (root, util-linux): simulated hosts can be run. */
function canSimulateHosts() {
  return new Promise((resolve) => {
    const proc = spawn("unshare", ["-u", "hostname", "credcache-probe"], { stdio: "ignore" });
    proc.once("error", () => resolve(false));
    proc.once("close", (code) => resolve(code === 0));
  });
}

/** HOSTS simulated hosts x PER_HOST processes, all at once, on one Redis namespace. */
async function fleet(env) {
  sts.resetStats();
  const url = storeUrl("redis");
  const runs = [];
  for (let h = 1; h <= HOSTS; h++) {
    for (let p = 0; p < PER_HOST; p++) runs.push(runChild({ ...env, STS_CACHE_URL: url }, `sim-host-${h}`));
  }
  const reports = await Promise.all(runs);
  const { stats } = sts;
  return {
    ok: reports.filter((r) => r.ok).length,
    keys: new Set(reports.map((r) => r.key)).size,
    sts: stats.sts.assumeRoleWithWebIdentity,
    imds: stats.credentialFetches,
  };
}

const HOSTS = Number(flags.hosts);
const PER_HOST = Number(flags["per-host"]);
const fleetRows = [];
if (redis && HOSTS > 0 && (await canSimulateHosts())) {
  const web = await fleet(baseEnv);
  fleetRows.push(
    `| web identity (IRSA) | ${web.ok}/${HOSTS * PER_HOST} | ${web.keys} | ${web.sts} AssumeRoleWithWebIdentity | 1 for the fleet |`,
  );
  const imdsEnv = { ...baseEnv, AWS_EC2_METADATA_SERVICE_ENDPOINT: sts.url };
  for (const name of [
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_SESSION_NAME",
    "AWS_EC2_METADATA_DISABLED",
  ]) {
    delete imdsEnv[name];
  }
  const imds = await fleet(imdsEnv);
  fleetRows.push(
    `| instance metadata (IMDS) | ${imds.ok}/${HOSTS * PER_HOST} | ${imds.keys} | ${imds.imds} IMDS credential fetches | ${HOSTS}: one per host, never shared |`,
  );
  console.error("  fleet: done");
}

const sdk = cold[0];
const lines = [
  "# bench:sts",
  "",
  `${PROCESSES} cold processes at once on one host, each with AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE (EKS IRSA),`,
  "resolving credentials once against the emulator's STS. Time to first credential counts from process start,",
  `node start-up included. ${cpus().length} cores, load average ${loadavg()[0].toFixed(2)} at the end. Command: \`pnpm bench:sts\`.`,
  "",
  "## Cold herd",
  "",
  "| provider | got credentials | AssumeRoleWithWebIdentity calls | p50 first credential | p99 first credential | p99 vs SDK alone | store errors (timeouts) |",
  "| --- | --- | --- | --- | --- | --- | --- |",
  ...cold.map(
    (r) =>
      `| ${label(r.backend)} | ${r.ok}/${PROCESSES} | ${r.calls} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${r === sdk ? "1.00x" : ratio(r.p99, sdk.p99)} | ${r.storeErrors || "none"} |`,
  ),
  "",
  `## STS throttled (\`Throttling: Rate exceeded\`) for the first ${THROTTLE_MS / 1000} s of the herd`,
  "",
  `Bound of the shared backoff schedule (first attempt + ${REFRESH_DEFAULTS.holderRetries} holder retry, one attempt per backoff step`,
  `inside the window from ${REFRESH_DEFAULTS.retryBaseMs / 1000} s doubling, then the one that succeeds; ${SDK_STS_ATTEMPTS} SDK calls each): ${bound} STS calls.`,
  "",
  "| provider | got credentials | STS calls | throttled | answered | within the bound | p99 first credential | herd wall time | store errors | first error |",
  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ...throttled.map(
    (r) =>
      `| ${label(r.backend)} | ${r.ok}/${PROCESSES} | ${r.calls} | ${r.throttled} | ${r.answered} | ${r.backend === "none" ? "n/a" : r.calls <= bound ? "yes" : "no"} | ${fmt(r.p99)} | ${fmt(r.wallMs)} | ${r.storeErrors || "none"} | ${(r.errors[0] ?? "").replace(/\|/g, "/").slice(0, 120)} |`,
  ),
  "",
  ...(fleetRows.length > 0
    ? [
        `## Fleet: ${HOSTS} simulated hosts (own host names, so own host identities) x ${PER_HOST} processes, one Redis`,
        "",
        "| source | got credentials | distinct keys | source calls | expected |",
        "| --- | --- | --- | --- | --- |",
        ...fleetRows,
        "",
      ]
    : []),
];
const report = lines.join("\n");
mkdirSync(join(here, "results"), { recursive: true });
writeFileSync(join(here, "results", "sts.md"), report);
console.log(report);

await redis?.stop();
await sts.close();
rmSync(work, { recursive: true, force: true });
