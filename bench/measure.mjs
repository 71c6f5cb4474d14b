// Shared measuring helpers for the benchmarks: side-by-side, interleaved rounds, so a
// noisy shared machine slows both sides of a ratio alike.
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { outputOf } from "../test/support/childOutput.mjs";

const benchDir = dirname(fileURLToPath(import.meta.url));

/**
 * One `node <args>` child, spawn to exit: resolves with its wall time in ms and its stderr
 * (where a child may report figures of its own); rejects when it exits non-zero.
 * @returns {Promise<{ ms: number, stderr: string }>}
 */
export function timeNodeProcess(/** @type {string[]} */ args, env = process.env) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const proc = spawn(process.execPath, args, { env, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    proc.stderr.setEncoding("utf8").on("data", (chunk) => {
      stderr += chunk;
    });
    proc.on("error", reject);
    proc.on("close", (code) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (code === 0) resolve({ ms, stderr });
      else reject(new Error(`node ${args.join(" ")} exited with ${code}: ${stderr.trim()}`));
    });
  });
}

/**
 * Runs one short-lived worker (bench/herd-child.mjs) with `env` added to this process's.
 * Resolves with its exit code, its JSON report (its last stdout line; undefined when it
 * printed none) and the head of its stderr. Killed after two minutes.
 * @returns {Promise<{ code: number | null, report: any, stderr: string }>}
 */
export async function runHerdChild(/** @type {Record<string, string>} */ env) {
  const proc = spawn(process.execPath, [join(benchDir, "herd-child.mjs")], {
    cwd: join(benchDir, ".."),
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const { code, stdout, stderr } = await outputOf(proc, { maxStderr: 8_000, killAfterMs: 120_000 });
  let report;
  try {
    report = JSON.parse(stdout.trim().split("\n").at(-1) ?? "");
  } catch {
    report = undefined;
  }
  return { code, report, stderr };
}

/** Percentile of a sorted copy of `samples`. */
export function percentile(samples, p) {
  const sorted = [...samples].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index];
}

/**
 * Runs each case in turn for `rounds` rounds. A case is `{ name, run, batch }`: `run()`
 * may be async; `batch` calls are timed together (for sub-microsecond operations) and
 * the per-call time of each batch is one sample, in microseconds.
 */
export async function interleave(cases, { rounds = 30, perRound = 200, warmup = 2 } = {}) {
  const samples = new Map(cases.map((c) => [c.name, []]));
  for (let round = 0; round < rounds + warmup; round++) {
    for (const c of cases) {
      const batch = c.batch ?? 1;
      for (let i = 0; i < perRound; i++) {
        const start = process.hrtime.bigint();
        for (let j = 0; j < batch; j++) await c.run();
        const micros = Number(process.hrtime.bigint() - start) / 1000 / batch;
        if (round >= warmup) samples.get(c.name).push(micros);
      }
    }
  }
  return cases.map((c) => {
    const s = samples.get(c.name);
    return { name: c.name, p50: percentile(s, 50), p99: percentile(s, 99), n: s.length };
  });
}

export function fmtMicros(us) {
  if (!Number.isFinite(us)) return "–";
  if (us >= 1000) return `${(us / 1000).toFixed(2)} ms`;
  if (us >= 10) return `${us.toFixed(0)} µs`;
  return `${us.toFixed(2)} µs`;
}

export function fmtRatio(r) {
  return Number.isFinite(r) ? `${r.toFixed(2)}×` : "–";
}

/** Prints a Markdown table and returns its text. */
export function table(headers, rows) {
  const lines = [`| ${headers.join(" | ")} |`, `| ${headers.map(() => "---").join(" | ")} |`];
  for (const row of rows) lines.push(`| ${row.join(" | ")} |`);
  const text = lines.join("\n");
  console.log(text);
  return text;
}
