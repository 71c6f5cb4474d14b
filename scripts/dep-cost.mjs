#!/usr/bin/env node
// What each runtime dependency costs: the time to load it in a fresh process (median of
// several runs, beside `node -e 0`) and its size on disk with its own dependencies.
// Prints the table the README's "Dependencies" section quotes.
//
// Usage: node scripts/dep-cost.mjs [runs]   (after `pnpm install`)
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { table } from "../bench/measure.mjs";

const root = resolve(import.meta.dirname, "..");
const runs = Number(process.argv[2] ?? 7);

// Runtime dependency -> the package that declares it (resolution starts there).
const DEPENDENCIES = [
  ["lru-cache", "packages/memory"],
  ["better-sqlite3", "packages/sqlite"],
  ["keyv", "packages/keyv"],
  ["@keyv/redis", "packages/keyv"],
  ["@aws-sdk/credential-providers", "packages/cli"],
];

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Wall time of one fresh `node -e <code>`, in ms. */
function timeOnce(code, cwd) {
  const start = process.hrtime.bigint();
  execFileSync(process.execPath, ["-e", code], { cwd, stdio: "ignore" });
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** Medians of `node -e 0` and of `node -e <code>`, run alternately so load drift hits both. */
function timeAgainstBaseline(code, cwd) {
  const base = [];
  const with_ = [];
  for (let i = 0; i < runs; i++) {
    base.push(timeOnce("0", cwd));
    with_.push(timeOnce(code, cwd));
  }
  return { base: median(base), ms: median(with_) };
}

/** The directory of package `name` as Node would find it from `from` (exports may hide ./package.json). */
function packageDir(name, from) {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return realpathSync(candidate);
    if (dir === dirname(dir)) throw new Error(`${name} not found from ${from}`);
  }
}

/** Bytes on disk of a package directory and, recursively, the packages it depends on. */
function installBytes(pkgDir, seen = new Set()) {
  const real = realpathSync(pkgDir);
  if (seen.has(real)) return 0;
  seen.add(real);
  let bytes = 0;
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name === "node_modules") continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile()) bytes += statSync(path).size;
    }
  };
  walk(real);
  const manifest = JSON.parse(readFileSync(join(real, "package.json"), "utf8"));
  for (const dep of Object.keys(manifest.dependencies ?? {})) {
    try {
      bytes += installBytes(packageDir(dep, real), seen);
    } catch {
      // An optional dependency that is not installed: not counted.
    }
  }
  return bytes;
}

function packageCount(pkgDir) {
  const seen = new Set();
  installBytes(pkgDir, seen);
  return seen.size;
}

const rows = [["dependency", "node -e 0 (ms)", "with require (ms)", "added (ms)", "on disk", "packages"]];
for (const [name, from] of DEPENDENCIES) {
  const cwd = join(root, from);
  const pkgDir = packageDir(name, cwd);
  // require() works for all of them from Node 20.19 (require(esm) for the ESM-only ones).
  const { base, ms } = timeAgainstBaseline(`require(${JSON.stringify(name)})`, cwd);
  const bytes = installBytes(pkgDir);
  rows.push([
    name,
    base.toFixed(1),
    ms.toFixed(1),
    (ms - base).toFixed(1),
    `${(bytes / 1024 / 1024).toFixed(1)} MiB`,
    String(packageCount(pkgDir)),
  ]);
}
table(rows[0], rows.slice(1));
console.log(`\nnode ${process.version}, ${runs} runs each`);
