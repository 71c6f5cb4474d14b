#!/usr/bin/env node
// Checks the packages as users get them: `pnpm pack` every public package, lint each
// tarball (publint, @arethetypeswrong/cli), install the tarballs into fresh apps with npm
// and with pnpm (strict layout), and there resolve credentials through fromCache over the
// file, sqlite and memory stores (ESM and CJS), type-check the public API (node16 and
// bundler resolution, strict, no skipLibCheck) and run the CLI against the IMDS emulator.
// Prints an install-matrix table; exits 1 when any cell failed.
//
// Usage: node scripts/pack-check.mjs [--keep]   (after `pnpm build`; needs npm and pnpm on PATH)
// Native modules compile from source when no prebuilt binary can be downloaded; set
// npm_config_nodedir (.ci/run does) when Node's headers cannot be downloaded either.
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { table } from "../bench/measure.mjs";

const run = promisify(execFile);
const root = resolve(import.meta.dirname, "..");
const bin = (name) => join(root, "node_modules", ".bin", name);
const keep = process.argv.includes("--keep"); // leave the apps in place to look at
const work = mkdtempSync(join(tmpdir(), "credcache-pack-"));
const tarballs = join(work, "tarballs");
mkdirSync(tarballs);

/** Runs a command; resolves to its output (stdout only with `stdoutOnly`), or throws with the output attached. */
async function sh(cmd, args, { stdoutOnly = false, ...options } = {}) {
  try {
    const { stdout, stderr } = await run(cmd, args, { maxBuffer: 64 << 20, timeout: 600_000, ...options });
    return stdoutOnly ? stdout : `${stdout}${stderr}`;
  } catch (error) {
    const output = `${error.stdout ?? ""}${error.stderr ?? ""}`.trim().split("\n").slice(-30).join("\n");
    throw new Error(`${cmd} ${args.join(" ")} failed (exit ${error.code})\n${output}`);
  }
}

const results = []; // { app, check, ok, detail }
async function check(app, name, fn) {
  const started = Date.now();
  try {
    const detail = (await fn()) ?? "";
    results.push({ app, check: name, ok: true, detail, ms: Date.now() - started });
  } catch (error) {
    results.push({
      app,
      check: name,
      ok: false,
      detail: error.message.split("\n")[0],
      ms: Date.now() - started,
    });
    console.error(`\n✗ ${app}: ${name}\n${error.message}\n`);
  }
}

// 1. Pack every public package (pnpm turns workspace: ranges into real versions).
const packages = readdirSync(join(root, "packages"))
  .map((dir) => ({
    dir: join(root, "packages", dir),
    manifest: JSON.parse(readFileSync(join(root, "packages", dir, "package.json"), "utf8")),
  }))
  .filter(({ manifest }) => !manifest.private);
const tarballOf = {};
for (const { dir, manifest } of packages) {
  await sh("pnpm", ["pack", "--pack-destination", tarballs], { cwd: dir });
  const file = `${manifest.name.replace("@", "").replace("/", "-")}-${manifest.version}.tgz`;
  tarballOf[manifest.name] = join(tarballs, file);
}

// 2. Lint every tarball.
for (const name of Object.keys(tarballOf)) {
  await check(name, "publint", async () => {
    const out = await sh(bin("publint"), ["--strict", tarballOf[name]]);
    if (!/All good/.test(out)) throw new Error(out);
    return "all good";
  });
  await check(name, "attw", async () => {
    // Exits non-zero on any problem; cli and imds-emulator also ship a bin.
    const out = await sh(bin("attw"), [tarballOf[name], "--format", "ascii"]);
    return /No problems found/.test(out) ? "no problems" : out.split("\n")[2];
  });
}

// 3. Apps. Tarballs reference each other by version range (^0.1.0), which is not on the
//    registry yet, so overrides point every @credcache package at its tarball.
const fileSpecs = Object.fromEntries(Object.entries(tarballOf).map(([name, file]) => [name, `file:${file}`]));
const cliManifest = JSON.parse(readFileSync(join(root, "packages/cli/package.json"), "utf8"));
const sdkRange = cliManifest.dependencies["@aws-sdk/credential-providers"];
const sqliteRange = cliManifest.peerDependencies["better-sqlite3"];
const tsRange = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).devDependencies.typescript;

const PROGRAM = (format) => {
  const load =
    format === "esm"
      ? `import { fromInstanceMetadata } from "@aws-sdk/credential-providers";
import { createCache } from "@credcache/config";
import { fromCache } from "@credcache/core";`
      : `const { fromInstanceMetadata } = require("@aws-sdk/credential-providers");
const { createCache } = require("@credcache/config");
const { fromCache } = require("@credcache/core");`;
  return `${load}
// usage: <url> write|read|both. "write" resolves from IMDS and stores; "read" must find
// the stored set (its provider fails); "both" does both with two providers in-process.
const [url, mode] = process.argv.slice(2);
const refuse = async () => { throw new Error("the second provider must read what the first wrote"); };
async function resolveWith(provider) {
  const cache = await createCache(url);
  const credentials = fromCache({ provider, cache, key: "pack-check" });
  const { accessKeyId, expiration } = await credentials();
  await credentials.close();
  return { accessKeyId, expiration: expiration?.toISOString() };
}
async function main() {
  if (mode === "both") {
    const cache = await createCache(url);
    const first = fromCache({ provider: fromInstanceMetadata(), cache, key: "pack-check" });
    const second = fromCache({ provider: refuse, cache, key: "pack-check" });
    const a = await first();
    const b = await second();
    await first.close();
    await second.close();
    await cache.close?.();
    if (a.accessKeyId !== b.accessKeyId) throw new Error("second provider got another set");
    console.log(JSON.stringify({ accessKeyId: a.accessKeyId }));
    return;
  }
  console.log(JSON.stringify(await resolveWith(mode === "write" ? fromInstanceMetadata() : refuse)));
}
main().catch((error) => { console.error(error); process.exit(1); });
`;
};

const TYPES = `import type { AwsCredentialIdentity } from "@smithy/types";
import {
  type CacheEvent,
  type CredentialCache,
  CacheConfigError,
  CredcacheError,
  CredentialsUnavailableError,
  MissingAdapterError,
  encryptedCache,
  fromCache,
  fromCachedInstanceMetadata,
} from "@credcache/core";
import { createCache } from "@credcache/config";
import { fileCache } from "@credcache/fs";
import { memoryCache } from "@credcache/memory";
import { sqliteCache } from "@credcache/sqlite";
import { startImdsEmulator } from "@credcache/imds-emulator";

export async function typed(): Promise<AwsCredentialIdentity> {
  const imds = await startImdsEmulator();
  const stores: CredentialCache[] = [fileCache({ dir: "/tmp/x" }), sqliteCache({ path: "/tmp/x.db" }), memoryCache()];
  const cache: CredentialCache = encryptedCache(await createCache("memory:"), { keys: [Buffer.alloc(32)] });
  const events: CacheEvent["type"][] = [];
  const credentials = fromCache({
    provider: async () => ({ accessKeyId: "a", secretAccessKey: "s" }),
    cache,
    onEvent: (event) => events.push(event.type),
  });
  const preset = fromCachedInstanceMetadata({ cache: stores[0]! });
  try {
    return await credentials();
  } catch (error) {
    if (error instanceof CredentialsUnavailableError && !error.tryNextLink) throw error;
    if (error instanceof MissingAdapterError) console.log(error.packageName);
    if (error instanceof CacheConfigError || error instanceof CredcacheError) console.log(error.code);
    return preset();
  } finally {
    await imds.close();
  }
}
`;

function tsconfig(moduleResolution, files) {
  const module = moduleResolution === "bundler" ? "preserve" : moduleResolution;
  return JSON.stringify({
    compilerOptions: {
      module,
      moduleResolution,
      target: "es2022",
      strict: true,
      noEmit: true,
      skipLibCheck: false,
      types: ["node"],
    },
    files,
  });
}

async function startEmulator(app) {
  const url = pathToFileURL(join(app, "node_modules/@credcache/imds-emulator/dist/index.js")).href;
  const { startImdsEmulator } = await import(url);
  return startImdsEmulator();
}

/** The checks run in one app. `only` limits them (the CLI-only app has no sqlite). */
async function checkApp(label, app, { full }) {
  const imds = await startEmulator(app);
  const env = { ...process.env, AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url };
  delete env.CREDCACHE_URL;
  delete env.CREDCACHE_CONFIG;
  const node = (args) => sh(process.execPath, args, { cwd: app, env, stdoutOnly: true });
  const served = () => imds.currentCredentials().accessKeyId;
  try {
    if (full) {
      const stores = { file: `file://${join(app, "store")}`, sqlite: `sqlite://${join(app, "cache.db")}` };
      for (const [store, url] of Object.entries(stores)) {
        // ESM writes, CJS reads (another process, another module format), and back.
        await check(label, `ESM writes, CJS reads (${store})`, async () => {
          const wrote = JSON.parse(await node(["esm.mjs", url, "write"]));
          const read = JSON.parse(await node(["cjs.cjs", url, "read"]));
          if (wrote.accessKeyId !== served() || read.accessKeyId !== wrote.accessKeyId)
            throw new Error("different sets");
        });
        await check(label, `CJS writes, ESM reads (${store})`, async () => {
          const before = imds.stats.credentialFetches;
          await node(["cjs.cjs", url, "write"]); // served from the store: still valid
          const read = JSON.parse(await node(["esm.mjs", url, "read"]));
          if (read.accessKeyId !== served()) throw new Error("different set");
          if (imds.stats.credentialFetches !== before)
            throw new Error("fetched again although the store had it");
        });
      }
      for (const format of ["esm.mjs", "cjs.cjs"]) {
        await check(
          label,
          `${format.slice(0, 3).toUpperCase()} memory: two providers, one store`,
          async () => {
            const out = JSON.parse(await node([format, "memory:", "both"]));
            if (out.accessKeyId !== served()) throw new Error("different set");
          },
        );
      }
      const tsc = join(app, "node_modules/typescript/bin/tsc");
      for (const config of ["tsconfig.node16.json", "tsconfig.bundler.json"]) {
        await check(label, `tsc --noEmit (${config.split(".")[1]}, strict, no skipLibCheck)`, () =>
          node([tsc, "-p", config]),
        );
      }
    }
    // stdout only: a warning on stderr must not break the JSON.
    const credcache = (...args) =>
      sh("npx", ["--no-install", "credcache", ...args], { cwd: app, env, stdoutOnly: true });
    const processFrom = (cache) => credcache("process", "--source", "imds", "--cache", cache);
    await check(label, "npx credcache --help", async () => {
      const out = await credcache("--help");
      if (!/credcache process/.test(out)) throw new Error(out);
    });
    await check(label, "npx credcache process (file store)", async () => {
      const out = JSON.parse(await processFrom(`file://${join(app, "cli-store")}`));
      if (out.Version !== 1 || out.AccessKeyId !== served())
        throw new Error(JSON.stringify(Object.keys(out)));
    });
    if (full) {
      // The sqlite store is compiled into the command; better-sqlite3 is found beside it.
      await check(label, "npx credcache process (sqlite store)", async () => {
        const out = JSON.parse(await processFrom(`sqlite://${join(app, "cli-cache.db")}`));
        if (out.Version !== 1 || out.AccessKeyId !== served())
          throw new Error(JSON.stringify(Object.keys(out)));
      });
    } else {
      // The Redis store has its own client: the CLI alone reads and writes Redis.
      const redis = `redis://127.0.0.1:6379/0?namespace=pack-check-${process.pid}`;
      await check(label, "npx credcache process (redis store, nothing else installed)", async () => {
        try {
          const out = JSON.parse(await processFrom(redis));
          if (out.Version !== 1 || out.AccessKeyId !== served())
            throw new Error(JSON.stringify(Object.keys(out)));
        } finally {
          await credcache("clear", "--cache", redis).catch(() => {});
        }
      });
      await check(label, "sqlite:// without better-sqlite3 says what to install", async () => {
        try {
          await processFrom(`sqlite://${join(app, "x.db")}`);
        } catch (error) {
          if (/\(exit 2\)/.test(error.message) && /npm install better-sqlite3/.test(error.message)) {
            return "exit 2, names better-sqlite3";
          }
          throw error;
        }
        throw new Error("succeeded without better-sqlite3");
      });
    }
  } finally {
    await imds.close();
  }
}

async function makeApp(label, manager, deps, { full }) {
  const app = join(work, label);
  mkdirSync(app);
  const dependencies = Object.fromEntries(deps.map((name) => [name, fileSpecs[name] ?? name]));
  const manifest = { name: `pack-check-${label}`, private: true, version: "0.0.0", dependencies };
  if (full) {
    Object.assign(dependencies, {
      "@aws-sdk/credential-providers": sdkRange,
      // What the CLI's sqlite:// needs beside it (an optional peer of @credcache/cli).
      "better-sqlite3": sqliteRange,
      "@smithy/types": "^4",
      "@types/node": "^20",
      typescript: tsRange,
    });
  }
  if (manager === "npm") manifest.overrides = fileSpecs;
  writeFileSync(join(app, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  if (manager === "pnpm") {
    const overrides = Object.entries(fileSpecs).map(([name, spec]) => `  "${name}": "${spec}"`);
    writeFileSync(
      join(app, "pnpm-workspace.yaml"),
      `overrides:\n${overrides.join("\n")}\nallowBuilds:\n  better-sqlite3: true\n`,
    );
  }
  writeFileSync(join(app, "esm.mjs"), PROGRAM("esm"));
  writeFileSync(join(app, "cjs.cjs"), PROGRAM("cjs"));
  writeFileSync(join(app, "api.mts"), TYPES);
  writeFileSync(join(app, "api.cts"), TYPES);
  writeFileSync(join(app, "api.ts"), TYPES);
  writeFileSync(join(app, "tsconfig.node16.json"), tsconfig("node16", ["api.mts", "api.cts"]));
  writeFileSync(join(app, "tsconfig.bundler.json"), tsconfig("bundler", ["api.ts"]));
  let installed = false;
  await check(label, `${manager} install`, async () => {
    const args =
      manager === "npm" ? ["install", "--no-audit", "--no-fund"] : ["install", "--reporter=append-only"];
    await sh(manager, args, { cwd: app });
    installed = true;
    return deps.join(" ");
  });
  if (installed) await checkApp(label, app, { full });
}

const everything = [
  "@credcache/core",
  "@credcache/config",
  "@credcache/fs",
  "@credcache/sqlite",
  "@credcache/memory",
  "@credcache/cli",
  "@credcache/imds-emulator",
];
try {
  await makeApp("npm", "npm", everything, { full: true });
  await makeApp("pnpm", "pnpm", everything, { full: true });
  // What `npm install @credcache/cli` gets: the file store, no SQLite compile.
  await makeApp("npm-cli-only", "npm", ["@credcache/cli", "@credcache/imds-emulator"], { full: false });
} finally {
  if (!keep) rmSync(work, { recursive: true, force: true });
}

// The table.
const apps = [...new Set(results.map((r) => r.app))];
const rows = [["where", "check", "result", "time"]];
for (const app of apps) {
  for (const r of results.filter((x) => x.app === app)) {
    rows.push([
      app,
      r.check,
      r.ok ? `ok${r.detail ? ` (${r.detail})` : ""}` : `FAILED: ${r.detail}`,
      `${(r.ms / 1000).toFixed(1)} s`,
    ]);
  }
}
console.log();
table(rows[0], rows.slice(1));
const failed = results.filter((r) => !r.ok).length;
console.log(`\n${results.length - failed} passed, ${failed} failed${keep ? `; apps kept in ${work}` : ""}`);
process.exitCode = failed ? 1 : 0;
