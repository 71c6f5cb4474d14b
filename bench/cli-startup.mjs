// Cold start of `credcache process` with a warm cache, against a bare `node -e 0`.
// Run: node bench/cli-startup.mjs [--runs 30]   (after `pnpm build`)
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { startImdsEmulator } from "@credcache/imds-emulator";
import { fmtRatio, percentile, runHerdChild, table, timeNodeProcess } from "./measure.mjs";

const BIN = fileURLToPath(new URL("../packages/cli/dist/bin.cjs", import.meta.url));

/** Wall time of one child process, spawn to exit, in ms. Rejects when it fails. */
const timeRun = async (args, env) => (await timeNodeProcess(args, env)).ms;

/**
 * Runs `node -e 0` and `credcache process` against warm file and sqlite caches, alternating,
 * `runs` times each. The IMDS emulator runs in this process; the warm runs must not call it.
 * @returns `{ rows, text, ratio }`: one row per case (p50/p99 in ms, p50 ratio to `node -e 0`),
 *   the Markdown table (also printed), and the warm file-cache ratio, whose target is <= 1.25 (issue 13), as is the sqlite one.
 */
export async function runCliStartupBench({ runs = 30 } = {}) {
  const emulator = await startImdsEmulator({ port: 0 });
  const dir = await mkdtemp(join(tmpdir(), "credcache-bench-cli-"));
  const env = { ...process.env, AWS_EC2_METADATA_SERVICE_ENDPOINT: emulator.url };
  delete env.CREDCACHE_URL;
  delete env.CREDCACHE_CONFIG;
  const processArgs = (cache) => [BIN, "process", "--source", "imds", "--cache", cache];
  const cases = [
    { name: "node -e 0", args: ["-e", "0"] },
    { name: "credcache process, warm file cache", args: processArgs(pathToFileURL(join(dir, "cache")).href) },
    { name: "credcache process, warm sqlite cache", args: processArgs(`sqlite://${join(dir, "cache.db")}`) },
  ];
  try {
    // Fill the caches and the OS page cache; none of this is measured.
    for (const c of cases) await timeRun(c.args, env);
    emulator.resetStats();
    const samples = cases.map(() => []);
    for (let i = 0; i < runs; i++) {
      for (const [j, c] of cases.entries()) samples[j].push(await timeRun(c.args, env));
    }
    if (emulator.stats.requests.total !== 0) {
      throw new Error(
        `the warm runs called IMDS ${emulator.stats.requests.total} times: the cache was not warm`,
      );
    }
    const base = percentile(samples[0], 50);
    const rows = cases.map((c, j) => {
      const p50Ms = percentile(samples[j], 50);
      return { name: c.name, runs, p50Ms, p99Ms: percentile(samples[j], 99), ratio: p50Ms / base };
    });
    const title = "### credcache process cold start, warm cache (target: p50 <= 1.25x node -e 0)";
    console.log(`\n${title}\n`);
    const text = table(
      ["case", "runs", "p50", "p99", "p50 / node -e 0"],
      rows.map((r) => [
        r.name,
        r.runs,
        `${r.p50Ms.toFixed(1)} ms`,
        `${r.p99Ms.toFixed(1)} ms`,
        fmtRatio(r.ratio),
      ]),
    );
    return {
      rows,
      text: `${title}\n\n${text}`,
      ratio: rows[1].ratio,
    };
  } finally {
    await emulator.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const REDIS_URL = "redis://127.0.0.1:6379/0"; // the machine's Redis, as in bench:herd

/** One short-lived worker (bench/herd-child.mjs): its report, or an error saying why it has none. */
async function firstCredential(url, env) {
  const { report, stderr } = await runHerdChild({ ...env, HERD_CACHE_URL: url });
  if (report?.ok) return report;
  throw new Error(
    `herd child (${url}) failed: ${report?.error ?? "no report"} ${stderr.trim().slice(0, 300)}`,
  );
}

/**
 * Short-lived workers (the example's preset over `createCache(url)`) on a warm store: time
 * to first credential (from process start, node's own start-up included) and CPU time to
 * it, against the same worker with the file store, alternating, `runs` times each. The SDK
 * alone (a fetch from the loopback emulator every time) is shown for scale.
 */
export async function runFirstCredentialBench({ runs = 20 } = {}) {
  const emulator = await startImdsEmulator({ port: 0 });
  const dir = await mkdtemp(join(tmpdir(), "credcache-bench-ttfc-"));
  const env = { ...process.env, AWS_EC2_METADATA_SERVICE_ENDPOINT: emulator.url };
  delete env.CREDCACHE_URL;
  const cases = [
    { name: "file", url: pathToFileURL(join(dir, "cache")).href },
    { name: "sqlite", url: `sqlite://${join(dir, "cache.db")}` },
    { name: "keyv + redis", url: REDIS_URL },
    { name: "SDK alone (fetches every time)", url: "none" },
  ];
  try {
    for (const c of cases) await firstCredential(c.url, env); // fill the stores
    const samples = cases.map(() => ({ ttfc: [], cpu: [] }));
    for (let i = 0; i < runs; i++) {
      for (const [j, c] of cases.entries()) {
        const out = await firstCredential(c.url, env);
        samples[j].ttfc.push(out.ttfcMs);
        samples[j].cpu.push(out.cpuMs);
      }
    }
    const base = { ttfc: percentile(samples[0].ttfc, 50), cpu: percentile(samples[0].cpu, 50) };
    const rows = cases.map((c, j) => ({
      name: c.name,
      runs,
      ttfcMs: percentile(samples[j].ttfc, 50),
      cpuMs: percentile(samples[j].cpu, 50),
    }));
    const title =
      "### Short-lived worker, warm store: time and CPU to first credential (target: keyv + redis <= 1.5x file)";
    console.log(`\n${title}\n`);
    const text = table(
      ["store", "runs", "first credential p50", "/ file", "CPU to it p50", "/ file"],
      rows.map((r) => [
        r.name,
        r.runs,
        `${r.ttfcMs.toFixed(1)} ms`,
        fmtRatio(r.ttfcMs / base.ttfc),
        `${r.cpuMs.toFixed(1)} ms`,
        fmtRatio(r.cpuMs / base.cpu),
      ]),
    );
    return { rows, text: `${title}\n\n${text}` };
  } finally {
    await emulator.close();
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const at = process.argv.indexOf("--runs");
  const runs = at === -1 ? 30 : Number(process.argv[at + 1]);
  await runCliStartupBench({ runs });
  await runFirstCredentialBench({ runs: Math.min(runs, 20) });
}
