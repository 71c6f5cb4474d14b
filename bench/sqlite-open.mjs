// First `get` of a fresh process on a warm cache: the sqlite store (this tree's built dist,
// and optionally another build beside it) against the file store and a bare `node -e 0`.
// Wall time and the CPU time each child reports (steadier on a busy machine).
// Run: node bench/sqlite-open.mjs [--runs 30] [--old /tmp/sqlite-old/dist/index.cjs]
//   (after `pnpm build`; --old is any earlier build of packages/sqlite, e.g. main's, whose
//   directory can resolve @credcache/core, @credcache/fs and better-sqlite3)
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { fmtRatio, percentile, table, timeNodeProcess } from "./measure.mjs";

const SQLITE = fileURLToPath(new URL("../packages/sqlite/dist/index.cjs", import.meta.url));
const FS = fileURLToPath(new URL("../packages/fs/dist/index.cjs", import.meta.url));
const KEY = "imds";
const VALUE = { accessKeyId: "AKIAEXAMPLE", secretAccessKey: "x".repeat(40), expiration: "2999-01-01" };

/**
 * Every child reports the CPU time it used (all threads, ms) on exit: on a busy shared
 * machine, wall time swings by more than the differences measured here.
 */
const REPORT_CPU =
  'process.on("exit", () => { const u = process.cpuUsage(); process.stderr.write("cpu=" + (u.user + u.system) / 1000 + "\\n"); });';

/** A child's script: load the store's dist, open it, one `get` that must hit. */
const child = (dist, factory, options) =>
  REPORT_CPU +
  `const s = require(${JSON.stringify(dist)}).${factory}(${JSON.stringify(options)});` +
  `s.get(${JSON.stringify(KEY)}).then((v) => { if (v === undefined) { console.error("miss"); process.exit(1); } });`;

/** Wall time of one child process, spawn to exit, and the CPU time it reported, in ms. */
async function timeRun(args) {
  const { ms, stderr } = await timeNodeProcess(args);
  return { ms, cpu: Number(/cpu=([\d.]+)/.exec(stderr)?.[1]) };
}

const { values } = parseArgs({
  options: { runs: { type: "string", default: "30" }, old: { type: "string" } },
});
const runs = Number(values.runs);
const dir = await mkdtemp(join(tmpdir(), "credcache-bench-sqlite-open-"));
try {
  const db = join(dir, "cache.db");
  const files = join(dir, "files");
  // Fill both caches; not measured.
  const { sqliteCache } = await import(SQLITE);
  const { fileCache } = await import(FS);
  const sqlite = sqliteCache({ path: db });
  await sqlite.set(KEY, VALUE, 3600);
  await sqlite.close();
  await fileCache({ dir: files }).set(KEY, VALUE, 3600);

  const cases = [
    { name: "node -e 0", args: ["-e", `${REPORT_CPU}0`] },
    { name: "sqlite store, this build", args: ["-e", child(SQLITE, "sqliteCache", { path: db })] },
    ...(values.old
      ? [
          {
            name: `sqlite store, ${values.old}`,
            args: ["-e", child(values.old, "sqliteCache", { path: db })],
          },
        ]
      : []),
    { name: "file store", args: ["-e", child(FS, "fileCache", { dir: files })] },
  ];
  for (const c of cases) await timeRun(c.args); // the OS page cache
  const samples = cases.map(() => []);
  for (let i = 0; i < runs; i++) {
    for (const [j, c] of cases.entries()) samples[j].push(await timeRun(c.args));
  }
  const wall = samples.map((s) => s.map((r) => r.ms));
  const cpu = samples.map((s) => s.map((r) => r.cpu));
  const base = percentile(wall[0], 50);
  const cpuBase = percentile(cpu[0], 50);
  console.log(`\n### First get of a fresh process, warm cache (${runs} runs each, alternating)\n`);
  table(
    ["case", "wall p50", "wall p90", "p50 / node -e 0", "p50 - node -e 0", "CPU p50", "CPU - node -e 0"],
    cases.map((c, j) => {
      const p50 = percentile(wall[j], 50);
      const cpu50 = percentile(cpu[j], 50);
      return [
        c.name,
        `${p50.toFixed(1)} ms`,
        `${percentile(wall[j], 90).toFixed(1)} ms`,
        fmtRatio(p50 / base),
        `${(p50 - base).toFixed(1)} ms`,
        `${cpu50.toFixed(1)} ms`,
        `${(cpu50 - cpuBase).toFixed(1)} ms`,
      ];
    }),
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
