// A CommonJS application gets core's CJS build (through @credcache/config's), and `createCache` imports the adapter's
// ESM build, which brings core's ESM build: two copies of core in one process. The
// adapter's errors must still mean what they say to the copy that reads them.
import { spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, expect, test } from "vitest";

const CORE_CJS = fileURLToPath(new URL("../../packages/core/dist/index.cjs", import.meta.url));
const CONFIG_CJS = fileURLToPath(new URL("../../packages/config/dist/index.cjs", import.meta.url));

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "credcache-dual-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const program = `
const { readdirSync, writeFileSync } = require("node:fs");
const { join } = require("node:path");
const { fromCache } = require(process.env.CORE_CJS);
const { createCache } = require(process.env.CONFIG_CJS);
const dir = process.env.CACHE_DIR;
(async () => {
  const cache = await createCache("file://" + dir);
  await cache.set("app", { placeholder: true }, 600);
  // Garbage in the entry file: the fs store (ESM core) rejects it with CacheRecordError.
  const [entry] = readdirSync(dir).filter((name) => name.endsWith(".json"));
  writeFileSync(join(dir, entry), "{ not json", { mode: 0o600 });
  const events = [];
  const provider = fromCache({
    key: "app",
    cache,
    provider: async () => ({ accessKeyId: "AKIDEXAMPLE", secretAccessKey: "s", expiration: new Date(Date.now() + 3_600_000) }),
    onEvent: (event) => events.push(event.type + (event.reason ? ":" + event.reason : "")),
  });
  const credentials = await provider();
  await provider.close?.();
  process.stdout.write(JSON.stringify({ accessKeyId: credentials.accessKeyId, events }));
})().catch((error) => { console.error(error); process.exit(1); });
`;

test("a CommonJS app: garbage found by an adapter that loaded the other copy of core is a rejected record, not a store failure", async () => {
  const file = join(dir, "app.cjs");
  const cacheDir = join(dir, "cache");
  await writeFile(file, program);
  const run = spawnSync(process.execPath, [file], {
    env: { ...process.env, CORE_CJS, CONFIG_CJS, CACHE_DIR: cacheDir },
    encoding: "utf8",
    timeout: 60_000,
  });
  expect(run.stderr).not.toMatch(/Error/);
  expect(run.status).toBe(0);
  const { accessKeyId, events } = JSON.parse(run.stdout) as { accessKeyId: string; events: string[] };
  expect(accessKeyId).toBe("AKIDEXAMPLE");
  expect(events).toContain("record-rejected:unparseable");
  expect(events).not.toContain("cache-error");
});
