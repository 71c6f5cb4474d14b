#!/usr/bin/env node
// `pnpm bench:herd`: many processes resolve AWS credentials at once, per cache backend,
// against the IMDS emulator.
//
// 1. Cold herd: 1, 8, 32 and 64 processes start at the same moment on an empty cache and
//    each resolves credentials once. Counts IMDS credential fetches, time to first
//    credential (from process start, node start-up included), peak RSS and failures, each
//    also as a ratio to the SDK alone.
// 2. Compressed rotation: credentials live 8 s and the refresh windows shrink to match
//    (advisory 3 s, mandatory 2 s); 200 process starts spread over 60 s. Counts fetches
//    against rotations, twice: as EC2 usually rotates (the next set is out before the
//    refresh windows open: here 3.5 s before expiry, about 13 rotations), and, for the
//    file store, in the worst case EC2 documents (next set only 5 min before expiry,
//    inside the mandatory window: here 1 s), where a fetch in the windows returns the
//    set in hand and more than one fetch per rotation is unavoidable.
//
// 3. The scenarios of issue 11 (bench/herd-scenarios.mjs), run only when named:
//    cold-sdk (a cold herd with the SDK's own defaults and the preset, quiet and beside CPU
//    hogs), outage (IMDS down while a valid set is inside the refresh window), paused (a lock
//    holder paused between its fetch and its write), extended (IMDS serving an expired set) and
//    hang6s (a cold herd while the credential route hangs 6 s; --outage-backend picks the store).
//    `--scenarios cold-sdk,outage,paused,extended` runs only those; add herd and rotation to
//    run the old ones too. Without --scenarios: herd and rotation, as before.
//
// Writes bench/results/herd.md (a run of only the new scenarios keeps the old scenarios'
// sections from the previous file) and, when the cold herd ran, docs/herd.svg.
//
//   node bench/herd.mjs [--scenarios herd,rotation,cold-sdk,outage,paused,extended,hang6s]
//                       [--counts 1,8,32,64] [--backends none,memory,file,sqlite,redis]
//                       [--rotation-seconds 60] [--wave-size 4] [--wave-ms 1200] [--no-rotation] [--no-herd]
//                       [--lifetime-ms 8000] [--lead-ms 3500] [--late-lead-ms 1000] [--late-backends file]
//                       [--advisory-ms 3000] [--mandatory-ms 2000]
//                       [--herd-size 64] [--hogs 8] [--scenario-backends file,sqlite,redis]
//                       [--outage-seconds 90] [--outage-faults hang,500,429] [--outage-backend file]
//                       [--outage-callers 16] [--caller-every-ms 250] [--cli-pause-ms 4000]
//                       [--paused-lock-ttl-ms 1500]
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { startImdsEmulator } from "@credcache/imds-emulator";
import { isRedisReachable } from "../examples/sqs-consumer/src/redisCheck.mjs";
import { herdSvg, markdownTable } from "./herd-report.mjs";
import { runScenarios, SCENARIOS } from "./herd-scenarios.mjs";
import { percentile, runHerdChild } from "./measure.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");

const { values: flags } = parseArgs({
  // `pnpm bench:herd -- --no-rotation` passes the `--` on; npm and pnpm users both type it.
  args: process.argv.slice(2).filter((arg) => arg !== "--"),
  options: {
    counts: { type: "string", default: "1,8,32,64" },
    backends: { type: "string", default: "none,memory,file,sqlite,redis" },
    "rotation-backends": { type: "string", default: "none,file,sqlite,redis" },
    // 200 starts over 60 s: about 1.2 cores of process start-up, which a 2-core machine
    // can carry; 8 every 150 ms would need 15 cores, and then load, not caching, is measured.
    "rotation-seconds": { type: "string", default: "60" },
    "wave-size": { type: "string", default: "4" },
    "wave-ms": { type: "string", default: "1200" },
    "no-rotation": { type: "boolean", default: false },
    "no-herd": { type: "boolean", default: false },
    "redis-url": { type: "string", default: "redis://127.0.0.1:6379" },
    "lifetime-ms": { type: "string", default: "8000" },
    "lead-ms": { type: "string", default: "3500" },
    "late-lead-ms": { type: "string", default: "1000" },
    "late-backends": { type: "string", default: "file" },
    "advisory-ms": { type: "string", default: "3000" },
    "mandatory-ms": { type: "string", default: "2000" },
    scenarios: { type: "string" },
    "herd-size": { type: "string", default: "64" },
    hogs: { type: "string", default: "8" },
    "scenario-backends": { type: "string", default: "file,sqlite,redis" },
    "outage-seconds": { type: "string", default: "90" },
    "outage-faults": { type: "string", default: "hang,500,429" },
    "outage-backend": { type: "string", default: "file" },
    "outage-callers": { type: "string", default: "16" },
    "caller-every-ms": { type: "string", default: "250" },
    "cli-pause-ms": { type: "string", default: "4000" },
    "paused-lock-ttl-ms": { type: "string", default: "1500" },
  },
});
const scenarioNames = (flags.scenarios ?? "herd,rotation").split(",").map((name) => name.trim());
for (const name of scenarioNames) {
  if (name !== "herd" && name !== "rotation" && !SCENARIOS.includes(name)) {
    throw new Error(`unknown scenario "${name}"; use herd, rotation, ${SCENARIOS.join(", ")}`);
  }
}
if (!scenarioNames.includes("herd")) flags["no-herd"] = true;
if (!scenarioNames.includes("rotation")) flags["no-rotation"] = true;
const newScenarios = SCENARIOS.filter((name) => scenarioNames.includes(name));
const COUNTS = flags.counts.split(",").map(Number);
/** Credential lifetime and refresh windows, compressed from hours and minutes to seconds. */
const ROTATION = {
  lifetimeMs: Number(flags["lifetime-ms"]),
  leadMs: Number(flags["lead-ms"]),
  lateLeadMs: Number(flags["late-lead-ms"]),
  advisoryRefreshMs: Number(flags["advisory-ms"]),
  mandatoryRefreshMs: Number(flags["mandatory-ms"]),
};

const redisUp = await isRedisReachable(flags["redis-url"]);
const scratch = mkdtempSync(join(tmpdir(), "credcache-herd-"));
const runId = `${process.pid}-${Date.now().toString(36)}`;
let runCounter = 0;
/** Redis namespaces this run wrote to and the emulators whose keys they hold, cleaned up at the end. */
const redisUrls = [];
/** @type {Set<string>} */
const imdsUrls = new Set();

/** A fresh, empty store of each kind, per run. */
function freshStore(/** @type {string} */ backend) {
  const n = ++runCounter;
  switch (backend) {
    case "none":
      return "none";
    case "memory":
      return "memory:";
    case "file":
      return `file://${join(scratch, `file-${n}`)}`;
    case "sqlite":
      return `sqlite://${join(scratch, `sqlite-${n}.db`)}`;
    case "redis": {
      const url = `${flags["redis-url"]}?namespace=credcache-herd-${runId}-${n}`;
      redisUrls.push(url);
      return url;
    }
    default:
      throw new Error(`unknown backend "${backend}"`);
  }
}

function pickBackends(/** @type {string} */ list) {
  const names = list.split(",").map((b) => b.trim());
  if (names.includes("redis") && !redisUp) {
    console.log(`note: no Redis at ${flags["redis-url"]}; skipping keyv + redis (start one to include it)`);
  }
  return names.filter((b) => b !== "redis" || redisUp);
}

const failed = (/** @type {{ code: number | null, report: any }} */ r) => r.code !== 0 || !r.report?.ok;

/** Median wall time of `node -e 0`: the floor under any time to first credential. */
function nodeStartFloor() {
  const samples = [];
  for (let i = 0; i < 7; i++) {
    const t = performance.now();
    spawnSync(process.execPath, ["-e", "0"]);
    samples.push(performance.now() - t);
  }
  return percentile(samples, 50);
}

const fmtMs = (/** @type {number} */ ms) =>
  Number.isFinite(ms) ? (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`) : "–";
const fmtRatio = (/** @type {number} */ r) =>
  Number.isFinite(r) ? `${r < 0.1 ? r.toFixed(3) : r.toFixed(2)}×` : "–";
const pass = (/** @type {boolean} */ ok) => (ok ? "PASS" : "FAIL");
/** The SDK alone, and memory (which a new process starts empty): what credcache is compared with. */
const BASELINES = new Set(["none", "memory"]);
const label = (/** @type {string} */ backend) => (backend === "redis" ? "keyv + redis" : backend);

/** Tallies the events children logged, e.g. { "refresh-start:advisory:bg": 3 }. */
function tally(/** @type {any[]} */ reports, /** @type {(e: string) => boolean} */ keep) {
  /** @type {Record<string, number>} */
  const counts = {};
  for (const r of reports) for (const e of r?.events ?? []) if (keep(e)) counts[e] = (counts[e] ?? 0) + 1;
  return counts;
}
const fetchEvents = (/** @type {string} */ e) => e.startsWith("refresh-start");
/** Lock waits that ran out and store errors: what makes a cached backend fetch more than once. */
const lockEvents = (/** @type {string} */ e) =>
  e.startsWith("lock-waited:timeout") || e.startsWith("cache-error");
const showTally = (/** @type {Record<string, number>} */ t) =>
  Object.entries(t)
    .map(([k, v]) => `${k.replace("refresh-start:", "")} ${v}`)
    .join(", ") || "–";

/**
 * What every row reports of its children: failures and their errors, time to first
 * credential over the others, and the tallies of fetch reasons and lock trouble.
 */
function summarize(/** @type {Array<{ code: number | null, report: any, stderr: string }>} */ results) {
  const failedRuns = results.filter(failed);
  const ttfc = results.filter((r) => !failed(r)).map((r) => r.report.ttfcMs);
  const reports = results.map((r) => r.report);
  return {
    failures: failedRuns.length,
    errors: failedRuns.map((r) => r.report?.error ?? r.stderr.slice(0, 200)),
    p50: percentile(ttfc, 50),
    p99: percentile(ttfc, 99),
    fetchReasons: tally(reports, fetchEvents),
    lockTrouble: tally(reports, lockEvents),
  };
}

const sections = [];
const targets = [];
const say = (/** @type {string} */ text = "") => {
  console.log(text);
  sections.push(text);
};

const started = Date.now();
const floorMs = nodeStartFloor();
const machine = `${cpus().length} × ${cpus()[0]?.model.trim() ?? "cpu"}, node ${process.version}, load average ${loadavg()
  .map((l) => l.toFixed(1))
  .join(" ")} at start`;
say("# Herd benchmark");
say("");
say(`${machine}. Floor: \`node -e 0\` takes ${fmtMs(floorMs)} here (p50 of 7).`);
say("");

const imds = await startImdsEmulator();
imdsUrls.add(imds.url);

// ---- 1. cold herd ----
/** @type {Map<string, Map<number, any>>} */
const herd = new Map();
if (!flags["no-herd"]) {
  const backends = pickBackends(flags.backends);
  for (const n of COUNTS) {
    // Backends take turns at each size, so a noisy neighbour slows them alike.
    for (const backend of backends) {
      process.stderr.write(`cold herd: ${n} × ${backend}...\n`);
      imds.resetStats();
      const store = freshStore(backend);
      const results = await Promise.all(
        Array.from({ length: n }, () =>
          runHerdChild({ HERD_CACHE_URL: store, AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url }),
        ),
      );
      const row = {
        fetches: imds.stats.credentialFetches,
        ...summarize(results),
        rssKiB: Math.max(0, ...results.map((r) => r.report?.maxRssKiB ?? 0)),
        load: loadavg()[0] ?? 0,
      };
      if (!herd.has(backend)) herd.set(backend, new Map());
      herd.get(backend)?.set(n, row);
    }
  }

  say("## Cold herd: N processes start at once on an empty cache, each resolves once");
  say("");
  say(
    "Fetches are credential documents the IMDS emulator served. Time to first credential is measured in each process from its start " +
      "(`performance.timeOrigin`), so node start-up and module loading count. Ratios are to `none` (the SDK alone) at the same N.",
  );
  say("");
  const rows = [];
  for (const n of COUNTS) {
    const base = herd.get("none")?.get(n);
    for (const [backend, byCount] of herd) {
      const r = byCount.get(n);
      const ratio = (/** @type {number} */ v, /** @type {number | undefined} */ b) =>
        base && backend !== "none" && b ? ` (${fmtRatio(v / b)})` : "";
      rows.push([
        label(backend),
        String(n),
        `${r.fetches}${ratio(r.fetches, base?.fetches)}`,
        `${fmtMs(r.p50)}${ratio(r.p50, base?.p50)}`,
        `${fmtMs(r.p99)}${ratio(r.p99, base?.p99)}`,
        `${(r.rssKiB / 1024).toFixed(1)} MiB${ratio(r.rssKiB, base?.rssKiB)}`,
        String(r.failures),
      ]);
    }
  }
  say(
    markdownTable(
      ["backend", "processes", "source fetches", "first credential p50", "p99", "peak RSS", "failures"],
      rows,
    ),
  );
  say("");
  for (const [backend, byCount] of herd) {
    for (const [n, r] of byCount) {
      if (r.errors.length)
        say(`- ${backend} × ${n}: failures: ${[...new Set(r.errors)].slice(0, 3).join(" / ")}`);
      if (backend !== "none" && backend !== "memory" && r.fetches > 1) {
        say(
          `- ${backend} × ${n}: ${r.fetches} fetches; fetch reasons: ${showTally(r.fetchReasons)}; ` +
            `lock and store trouble: ${showTally(r.lockTrouble)} (load average ${r.load.toFixed(1)} when it ended)`,
        );
      }
    }
  }
  say("");
  const largest = Math.max(...COUNTS);
  for (const backend of ["file", "sqlite"]) {
    const r = herd.get(backend)?.get(largest);
    if (!r) continue;
    targets.push({
      what: `cold herd of ${largest}, ${backend}: exactly 1 fetch`,
      ok: r.fetches === 1,
      got: `${r.fetches} fetch${r.fetches === 1 ? "" : "es"}${r.fetches === 1 ? "" : ` (${showTally(r.fetchReasons)})`}`,
    });
  }
  for (const [backend, byCount] of herd) {
    const failures = [...byCount].filter(([, r]) => r.failures > 0).map(([n, r]) => `${r.failures} of ${n}`);
    const target = !BASELINES.has(backend);
    targets.push({
      what: `cold herd, ${label(backend)}: no process fails${target ? "" : " (baseline: shown, not a target)"}`,
      ok: failures.length === 0,
      got: failures.length ? `${failures.join(", ")} failed` : "0 failed",
      ...(!target && { info: true }),
    });
  }

  const subtitle = `${machine}; node -e 0 = ${fmtMs(floorMs)}`;
  const failedAtLargest = [...herd]
    .map(([backend, byCount]) => [backend, byCount.get(largest)?.failures ?? 0])
    .filter(([, failures]) => failures > 0)
    .map(([backend, failures]) => `${backend} ${failures}`);
  const footnote = failedAtLargest.length
    ? `Processes that failed (IMDS timeouts) at ${largest}: ${failedAtLargest.join(", ")} of ${largest}; p99 is over the others.`
    : "No process failed.";
  const svg = herdSvg(
    COUNTS,
    [...herd].map(([backend, byCount]) => ({
      backend,
      fetches: COUNTS.map((n) => byCount.get(n)?.fetches ?? Number.NaN),
      p99: COUNTS.map((n) => byCount.get(n)?.p99 ?? Number.NaN),
    })),
    subtitle,
    footnote,
  );
  mkdirSync(join(root, "docs"), { recursive: true });
  writeFileSync(join(root, "docs", "herd.svg"), svg);
}
await imds.close();

// ---- 2. compressed rotation ----
if (!flags["no-rotation"]) {
  const seconds = Number(flags["rotation-seconds"]);
  const waveSize = Number(flags["wave-size"]);
  const waveMs = Number(flags["wave-ms"]);
  const waves = Math.floor((seconds * 1000) / waveMs);
  /** @type {any[]} */
  const rotationRows = [];
  const runs = [
    ...pickBackends(flags["rotation-backends"]).map((backend) => ({
      backend,
      leadMs: ROTATION.leadMs,
      late: false,
    })),
    ...(flags["late-backends"]
      ? pickBackends(flags["late-backends"]).map((backend) => ({
          backend,
          leadMs: ROTATION.lateLeadMs,
          late: true,
        }))
      : []),
  ];
  for (const { backend, leadMs, late } of runs) {
    process.stderr.write(
      `rotation${late ? " (late rotation)" : ""}: ${backend}, ${waves} waves of ${waveSize} over ${seconds} s...\n`,
    );
    const emulator = await startImdsEmulator({ lifetimeMs: ROTATION.lifetimeMs, leadMs });
    imdsUrls.add(emulator.url);
    const store = freshStore(backend);
    // Observe the emulator's sets as EC2 would rotate them, whether or not anyone asks.
    const sets = new Set([emulator.currentCredentials().accessKeyId]);
    const watch = setInterval(() => sets.add(emulator.currentCredentials().accessKeyId), 100);
    const env = {
      HERD_CACHE_URL: store,
      AWS_EC2_METADATA_SERVICE_ENDPOINT: emulator.url,
      CREDCACHE_ADVISORY_REFRESH_MS: String(ROTATION.advisoryRefreshMs),
      CREDCACHE_MANDATORY_REFRESH_MS: String(ROTATION.mandatoryRefreshMs),
    };
    const pending = [];
    const t0 = performance.now();
    for (let w = 0; w < waves; w++) {
      const due = t0 + w * waveMs;
      await new Promise((r) => setTimeout(r, Math.max(0, due - performance.now())));
      for (let i = 0; i < waveSize; i++) pending.push(runHerdChild(env));
    }
    const results = await Promise.all(pending);
    clearInterval(watch);
    sets.add(emulator.currentCredentials().accessKeyId);
    const elapsed = (performance.now() - t0) / 1000;
    const stats = emulator.stats;
    await emulator.close();
    const row = {
      backend,
      late,
      starts: results.length,
      elapsed,
      rotations: sets.size,
      fetches: stats.credentialFetches,
      ...summarize(results),
      expired: results.filter((r) => r.report?.expiredOnArrival).length,
    };
    rotationRows.push(row);
    const run = late ? "late-rotation run" : "rotation run";
    if (backend !== "none") {
      targets.push({
        what: late
          ? `${run}, ${label(backend)}: fetches per rotation (not a target: shown to bound the worst case)`
          : `${run}, ${label(backend)}: fetches ≤ rotations + 1`,
        ok: row.fetches <= row.rotations + 1,
        got: `${row.fetches} fetches, ${row.rotations} rotations${late ? ` (${(row.fetches / row.rotations).toFixed(1)} per rotation, against ${row.starts} process starts)` : ""}`,
        ...(late && { info: true }),
      });
    }
    const target = !BASELINES.has(backend);
    targets.push({
      what: `${run}, ${label(backend)}: no process fails${target ? "" : " (baseline: shown, not a target)"}`,
      ok: row.failures === 0,
      got: `${row.failures} failed${row.expired ? `, ${row.expired} got expired credentials` : ""}`,
      ...(!target && { info: true }),
    });
  }

  say("## Compressed rotation");
  say("");
  say(
    `Credentials live ${ROTATION.lifetimeMs / 1000} s and the emulator serves a new set from ${ROTATION.leadMs / 1000} s before expiry ` +
      "(before the refresh windows open, as EC2 usually does: its credentials live hours and are replaced long before they expire); " +
      `in the late-rotation rows only ${ROTATION.lateLeadMs / 1000} s before expiry, inside the mandatory window (the 5 min minimum EC2 documents, compressed). ` +
      `Children refresh with advisoryRefreshMs ${ROTATION.advisoryRefreshMs} and mandatoryRefreshMs ${ROTATION.mandatoryRefreshMs} ` +
      `(other fromCache options at their defaults). ${waves} waves of ${waveSize} processes, one wave every ${waveMs} ms. ` +
      "Rotations = credential sets the emulator issued during the run (watched every 100 ms). " +
      "Fetch reasons tally the refresh-start events the children reported.",
  );
  say("");
  say(
    markdownTable(
      [
        "backend",
        "process starts",
        "seconds",
        "rotations",
        "source fetches",
        "fetch reasons",
        "first credential p50",
        "p99",
        "failures",
      ],
      rotationRows.map((r) => [
        `${label(r.backend)}${r.late ? " (late rotation)" : ""}`,
        String(r.starts),
        r.elapsed.toFixed(1),
        String(r.rotations),
        String(r.fetches),
        r.backend === "none" ? "(every process)" : showTally(r.fetchReasons),
        fmtMs(r.p50),
        fmtMs(r.p99),
        String(r.failures),
      ]),
    ),
  );
  say("");
  for (const r of rotationRows) {
    const waits = showTally(r.lockTrouble);
    const name = `${r.backend}${r.late ? " (late rotation)" : ""}`;
    if (waits !== "–") say(`- ${name}: lock waits and cache errors: ${waits}`);
    if (r.errors.length) say(`- ${name}: failures: ${[...new Set(r.errors)].slice(0, 3).join(" / ")}`);
  }
}

// ---- 3. the scenarios of issue 11 ----
/** Where the new scenarios' sections start in herd.md, so a run of only them keeps the old ones. */
const NEW_SCENARIOS_MARK = "<!-- issue-11 scenarios -->";
if (newScenarios.length) {
  say(NEW_SCENARIOS_MARK);
  say("");
  say("# Herd scenarios of issue 11 (slow, failing and paused sources)");
  say("");
  say(`${machine}.`);
  say("");
  say(`Command: \`node bench/herd.mjs ${process.argv.slice(2).join(" ")}\``);
  say("");
  await runScenarios(newScenarios, { flags, freshStore, pickBackends, say, targets, imdsUrls });
}

// ---- targets ----
say("");
say("## Targets");
say("");
for (const t of targets) say(`- ${t.info ? "info" : pass(t.ok)} ${t.what}: ${t.got}`);
say("");
say(
  `Total run time ${((Date.now() - started) / 1000).toFixed(0)} s; load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(" ")} at the end (the machine is shared: read times as ratios, not absolutes).`,
);

mkdirSync(join(here, "results"), { recursive: true });
const resultsFile = join(here, "results", "herd.md");
let kept = "";
if (flags["no-herd"] && flags["no-rotation"] && existsSync(resultsFile)) {
  // Only new scenarios ran: keep the old scenarios' sections (and their targets) from the last run.
  kept = readFileSync(resultsFile, "utf8").split(NEW_SCENARIOS_MARK)[0] ?? "";
  if (kept && !kept.endsWith("\n\n")) kept += "\n";
}
const written = kept ? sections.slice(sections.indexOf(NEW_SCENARIOS_MARK)) : sections;
writeFileSync(resultsFile, `${kept}${written.join("\n")}\n`);
console.log(`\nwrote bench/results/herd.md${flags["no-herd"] ? "" : " and docs/herd.svg"}`);

// ---- clean up ----
if (redisUrls.length) {
  const core = await import("@credcache/core");
  const { createCache } = await import("@credcache/config");
  for (const url of redisUrls) {
    const cache = await createCache(url);
    // Lock keys expire on their own (PX); the records are keyed by emulator URL and host.
    for (const url of imdsUrls) {
      const key = core.instanceMetadataKey({ env: { AWS_EC2_METADATA_SERVICE_ENDPOINT: url } });
      await cache.remove(key).catch(() => {});
    }
    await cache.close?.();
  }
}
rmSync(scratch, { recursive: true, force: true });
