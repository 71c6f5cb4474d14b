#!/usr/bin/env node

// credcache's fault and attack battery. `pnpm test:battery` builds, then runs this.
//
// Runs each group (battery/groups/<name>.mjs) as a child process in its own process group,
// streams and captures all of its output, kills it (and everything it started) at its
// deadline, checks that nothing it started outlived it, then scans every captured text for
// the secrets the groups registered, and prints one summary table and the final line
// `battery: N passed, M failed` (N/M = checks). Exits non-zero on any failure.
//
//   node battery/run.mjs                 all groups
//   node battery/run.mjs clock outage    some groups
//   BATTERY_KEEP=1                       keep the output dir and temp dirs for a post-mortem
//   BATTERY_SEED=n                       replay the fuzzers with a seed from a previous run

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { cleanRedisKeys, markdownTable } from "./harness.mjs";
import { setting } from "./settings.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const started = Date.now();
/** The whole battery stops here, whatever is left (the brief: under 10 minutes). */
const TOTAL_BUDGET_MS = Number(setting("BATTERY_BUDGET_MS")) || 570_000;
const deadline = started + TOTAL_BUDGET_MS;

/** In order; `budget` is each group's own deadline in seconds. */
const GROUPS = [
  { name: "fuzz-records", budget: 120 },
  { name: "fuzz-config", budget: 120 },
  { name: "clock", budget: 45 },
  { name: "outage", budget: 120 },
  { name: "encryption", budget: 45 },
  { name: "inspect", budget: 45 },
  { name: "permissions", budget: 45 },
  { name: "local-user", budget: 60 },
  { name: "attacks-identity", budget: 90 },
  { name: "attacks", budget: 120 },
  { name: "crash-write", budget: 90 },
  { name: "holder-killed", budget: 180 },
  { name: "unusable-store", budget: 180 },
  { name: "writer-storm", budget: 240 },
];

const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !GROUPS.some((g) => g.name === w));
if (unknown.length > 0) {
  console.error(`unknown group(s): ${unknown.join(", ")}; groups: ${GROUPS.map((g) => g.name).join(", ")}`);
  process.exit(2);
}
const groups = wanted.length > 0 ? GROUPS.filter((g) => wanted.includes(g.name)) : GROUPS;

const runId = randomBytes(6).toString("hex");
const out = mkdtempSync(join(tmpdir(), "credcache-battery-out-"));
const rows = []; // { group, check, attempts, failures, dataLost, passed, note }
const timings = [];
let current;

function cleanupAndExit(code) {
  if (current) killGroup(current, "SIGKILL");
  killOrphans();
  if (!setting("BATTERY_KEEP")) {
    rmSync(out, { recursive: true, force: true });
    rmSync(join(tmpdir(), `credcache-battery-${runId}`), { recursive: true, force: true });
  }
  process.exit(code);
}
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => {
    console.log(`\nbattery: ${signal}; stopping`);
    cleanupAndExit(130);
  });
}

function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

/** Processes that carry this run's id in their environment: anything a group left running. */
function processesOfThisRun() {
  const found = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const environ = readFileSync(`/proc/${name}/environ`, "latin1");
      if (environ.includes(`BATTERY_RUN_ID=${runId}\0`)) {
        let exe = "?";
        try {
          exe = readlinkSync(`/proc/${name}/exe`);
        } catch {}
        found.push({ pid: Number(name), exe });
      }
    } catch {
      // Gone meanwhile, or a kernel thread.
    }
  }
  return found;
}

function killOrphans() {
  const orphans = processesOfThisRun();
  for (const { pid } of orphans) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
  return orphans;
}

async function runGroup(group) {
  const file = join(here, "groups", `${group.name}.mjs`);
  const groupDeadline = Math.min(deadline, Date.now() + group.budget * 1000);
  const t0 = Date.now();
  if (groupDeadline - Date.now() < 5000) {
    rows.push({
      group: group.name,
      check: "(group run)",
      attempts: 0,
      failures: 1,
      dataLost: 0,
      passed: false,
      note: "not run: the battery's time budget is spent",
    });
    return;
  }
  console.log(`\n=== ${group.name} (deadline ${Math.round((groupDeadline - Date.now()) / 1000)} s)`);
  const captured = [];
  const child = spawn(process.execPath, [file], {
    cwd: dirname(here),
    detached: true, // its own process group: one kill reaches everything it started
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      BATTERY_OUT: out,
      BATTERY_RUN_ID: runId,
      BATTERY_DEADLINE: String(groupDeadline),
    },
  });
  current = child;
  const pipe = (stream, tag) =>
    createInterface({ input: stream }).on("line", (line) => {
      captured.push(`${tag}${line}`);
      process.stdout.write(`[${group.name}] ${line}\n`);
    });
  pipe(child.stdout, "");
  pipe(child.stderr, "stderr: ");
  let timedOut = false;
  const term = setTimeout(
    () => {
      timedOut = true;
      console.log(`[${group.name}] deadline passed: stopping the group`);
      killGroup(child, "SIGTERM");
      setTimeout(() => killGroup(child, "SIGKILL"), 3000).unref();
    },
    groupDeadline - Date.now() + 2000,
  );
  const exit = await new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  clearTimeout(term);
  // Whatever is left in its process group goes now.
  killGroup(child, "SIGKILL");
  current = undefined;
  writeFileSync(join(out, `output-${group.name}.txt`), `${captured.join("\n")}\n`);
  const ms = Date.now() - t0;
  timings.push({ group: group.name, ms });

  const resultsFile = join(out, `results-${group.name}.json`);
  if (existsSync(resultsFile)) {
    for (const r of JSON.parse(readFileSync(resultsFile, "utf8")).results)
      rows.push({ group: group.name, ...r });
  } else {
    rows.push({
      group: group.name,
      check: "(group run)",
      attempts: 1,
      failures: 1,
      dataLost: 0,
      passed: false,
      note: `exited without results (${JSON.stringify(exit)})`,
    });
  }
  if (timedOut) {
    rows.push({
      group: group.name,
      check: "finished within its deadline",
      attempts: 1,
      failures: 1,
      dataLost: 0,
      passed: false,
      note: `killed after ${Math.round(ms / 1000)} s`,
    });
  }
  // Give killed processes a moment to be reaped, then look for anything still running.
  await new Promise((resolve) => setTimeout(resolve, 200));
  const orphans = killOrphans();
  rows.push({
    group: group.name,
    check: "no process left running",
    attempts: 1,
    failures: orphans.length > 0 ? 1 : 0,
    dataLost: 0,
    passed: orphans.length === 0,
    note: orphans.length > 0 ? `killed ${orphans.map((o) => `${o.pid} (${o.exe})`).join(", ")}` : "",
  });
}

// ---- the secret scan ----

const CHUNK = 16;
const BASE64ISH = /[A-Za-z0-9+/=]{16,}/g;

/**
 * Finds any 31+ character piece of any secret in `text`: every secret is cut into 16-character
 * chunks, and every 16-character window of every base64-ish run of the text is looked up.
 */
function scan(text, chunks) {
  const hits = new Set();
  for (const match of text.matchAll(BASE64ISH)) {
    const run = match[0];
    for (let i = 0; i + CHUNK <= run.length; i++) {
      const owner = chunks.get(run.slice(i, i + CHUNK));
      if (owner !== undefined) hits.add(owner);
    }
  }
  return hits;
}

function chunksOf(secrets) {
  const chunks = new Map();
  secrets.forEach((secret, index) => {
    for (let i = 0; i + CHUNK <= secret.length; i += CHUNK) chunks.set(secret.slice(i, i + CHUNK), index);
  });
  return chunks;
}

function secretScan() {
  const secrets = new Set();
  const texts = [];
  for (const name of readdirSync(out)) {
    const text = readFileSync(join(out, name), "utf8");
    if (name.startsWith("secrets-")) {
      for (const line of text.split("\n")) if (line.length >= CHUNK) secrets.add(line);
    } else {
      texts.push({ name, text });
    }
  }
  const list = [...secrets];
  const chunks = chunksOf(list);
  let bytes = 0;
  const leaks = [];
  for (const { name, text } of texts) {
    bytes += text.length;
    for (const index of scan(text, chunks)) leaks.push({ file: name, secret: index });
  }
  // Control: the scanner finds a secret planted the way a leak would look.
  const control = randomBytes(30).toString("base64");
  const controlFound =
    scan(`warn: token=${control}, truncated ${control.slice(3, 40)}`, chunksOf([control])).size > 0;
  rows.push({
    group: "battery",
    check: "secret scan control: a planted secret is found",
    attempts: 1,
    failures: controlFound ? 0 : 1,
    dataLost: 0,
    passed: controlFound,
    note: "",
  });
  const kinds = {
    key: list.filter((s) => s.length === 40).length,
    other: list.filter((s) => s.length !== 40).length,
  };
  rows.push({
    group: "battery",
    check: "secret scan: no issued secret key or session token in any output",
    attempts: list.length,
    failures: leaks.length,
    dataLost: 0,
    // The whole battery must have had secrets to look for, or the scan proved nothing; a
    // chosen few groups may register none (writer-storm writes no credentials).
    passed: leaks.length === 0 && (list.length > 0 || wanted.length > 0),
    note:
      `${kinds.key} secret keys + ${kinds.other} tokens/other secrets, ${texts.length} files, ${(bytes / 1e6).toFixed(1)} MB ` +
      "(group output, child logs, events, log lines, inspect and error texts)" +
      (leaks.length > 0
        ? `; found in: ${[...new Set(leaks.map((l) => l.file))].slice(0, 8).join(", ")}`
        : "") +
      (list.length === 0
        ? `; no secrets were registered${wanted.length > 0 ? " by the groups chosen" : ""}`
        : ""),
  });
}

// ---- run ----

console.log(`credcache battery: ${groups.length} groups, run ${runId}, output in ${out}`);
for (const group of groups) await runGroup(group);
secretScan();
await cleanRedisKeys(runId);

const failed = rows.filter((r) => !r.passed);
const passed = rows.length - failed.length;
const totalSeconds = ((Date.now() - started) / 1000).toFixed(1);
console.log("\n## Battery summary\n");
console.log(
  markdownTable(
    ["group", "check", "attempts", "failures", "data lost", "result", "note"],
    rows.map((r) => [
      r.group,
      r.check,
      r.attempts,
      r.failures,
      r.dataLost,
      r.passed ? "pass" : "FAIL",
      r.note,
    ]),
  ),
);
console.log("\n## Time per group\n");
console.log(
  markdownTable(
    ["group", "seconds"],
    [...timings.map((t) => [t.group, (t.ms / 1000).toFixed(1)]), ["total", totalSeconds]],
  ),
);
if (failed.length > 0) {
  console.log("\n## Failures\n");
  for (const r of failed) {
    console.log(
      `- ${r.group} / ${r.check}: ${r.failures} failures, ${r.dataLost} data lost${r.note ? ` (${r.note})` : ""}`,
    );
    for (const d of r.details ?? []) console.log(`    - ${d}`);
  }
}
console.log(`\nbattery: ${passed} passed, ${failed.length} failed`);
cleanupAndExit(failed.length > 0 ? 1 : 0);
