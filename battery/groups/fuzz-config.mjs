// Bad config: every rejection by createCache is a typed error (CacheConfigError or
// MissingAdapterError, with .code) whose message says what to fix, never a raw TypeError,
// and no Redis password from the input appears in the message or in util.inspect(error).

import { createHash } from "node:crypto";
import { cpSync, mkdirSync, realpathSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { inspect } from "node:util";
import { createCache, parseCacheUrl } from "@credcache/config";
import { CredcacheError } from "@credcache/core";
import fc from "fast-check";
import { CheckFailure, expect, REPO_DIR, startGroup } from "../harness.mjs";
import { setting } from "../settings.mjs";

const g = startGroup("fuzz-config");
const seed = Number(setting("BATTERY_SEED")) || Math.floor(Math.random() * 2 ** 31);
// Accepted file/sqlite configs resolve relative paths against the cwd: keep them in a temp dir.
process.chdir(g.tmp("cwd"));
Reflect.deleteProperty(process.env, "CREDCACHE_URL");

// ---- arbitraries ----

const alnum = (n) => fc.stringMatching(new RegExp(`^[A-Za-z0-9]{${n}}$`));
/** Two distinctive halves around a character a URL parser may split on. */
const password = fc
  .tuple(alnum(6), fc.constantFrom("", "@", ":", "%", "#", "?", "/", "!", " ", "%40", "[", "]"), alnum(6))
  .map(([a, sep, b]) => ({ text: `Pw${a}${sep}Qx${b}`, fragments: [`Pw${a}`, `Qx${b}`] }));

const urlParts = fc.record({
  scheme: fc.constantFrom(
    "redis",
    "rediss",
    "REDIS",
    "file",
    "sqlite",
    "memory",
    "http",
    "redis+tls",
    "",
    "unix",
  ),
  sep: fc.constantFrom("://", ":///", ":", ":/", "//", ":////"),
  auth: fc.oneof(
    fc.constant(undefined),
    password.map((p) => ({ ...p, form: `user:${p.text}@` })),
    password.map((p) => ({ ...p, form: `:${p.text}@` })),
    password.map((p) => ({ ...p, form: `default:${p.text}@` })),
  ),
  host: fc.constantFrom(
    "127.0.0.1",
    "localhost",
    "",
    "[::1]",
    "bad host",
    "h%zz",
    "example.invalid",
    "0",
    "[zz]",
  ),
  port: fc.constantFrom("", ":6379", ":99999", ":abc", ":-1", ":0", ":"),
  path: fc.constantFrom(
    "",
    "/",
    "/0",
    "/tmp/x.db",
    "/a%2Fb",
    "/%E0%A4%A",
    "/dir/",
    "/%00",
    "/..%2F..",
    "rel",
    "/%",
  ),
  query: fc.constantFrom(
    "",
    "?max=0",
    "?max=abc",
    "?max=5",
    "?lock=maybe",
    "?lock=true",
    "?namespace=x",
    "?a=%zz",
  ),
});
const url = fc.oneof(
  {
    weight: 6,
    arbitrary: urlParts.map((p) => ({
      text: `${p.scheme}${p.sep}${p.auth?.form ?? ""}${p.host}${p.port}${p.path}${p.query}`,
      secret: p.auth?.fragments,
    })),
  },
  { weight: 1, arbitrary: fc.string().map((text) => ({ text })) },
  { weight: 1, arbitrary: fc.webUrl().map((text) => ({ text })) },
);

const anyValue = fc.anything({
  withBigInt: true,
  withNullPrototype: true,
  withBoxedValues: true,
  withMap: true,
  withDate: true,
  maxDepth: 2,
});
const driver = fc.oneof(
  fc.constantFrom(
    "memory",
    "file",
    "sqlite",
    "keyv",
    "redis",
    "Memory",
    "files",
    "",
    "__proto__",
    "constructor",
    "toString",
  ),
  anyValue,
);
const key32 = createHash("sha256").update("battery fuzz-config key").digest("base64");
const storeConfig = fc
  .record(
    {
      driver,
      max: anyValue,
      dir: anyValue,
      path: anyValue,
      url: fc.oneof(
        url.map((u) => u.text),
        anyValue,
      ),
      keyv: anyValue,
      namespace: anyValue,
      lock: anyValue,
      encryptionKeys: fc.oneof(
        anyValue,
        fc.array(fc.oneof(fc.string(), fc.uint8Array({ maxLength: 40 }), fc.constant(key32), anyValue), {
          maxLength: 3,
        }),
      ),
    },
    { requiredKeys: ["driver"] },
  )
  .filter((config) => !(typeof config.max === "number" && config.max > 100_000)); // huge max: its own check below
const namedStores = fc.record(
  {
    default: fc.oneof(fc.constantFrom("a", "b", "__proto__", "constructor", "toString", ""), anyValue),
    stores: fc.oneof(
      anyValue,
      fc.dictionary(
        fc.constantFrom("a", "b", "c"),
        fc.oneof(
          storeConfig,
          url.map((u) => u.text),
          anyValue,
        ),
        {
          maxKeys: 3,
        },
      ),
    ),
  },
  { requiredKeys: [] },
);

function circular() {
  const a = { driver: "memory" };
  a.max = a;
  const b = { driver: { self: null } };
  b.driver.self = b.driver;
  const c = { driver: "file" };
  c.dir = c;
  return [a, b, c];
}

// ---- the property ----

/** "Says what to fix": an example, the accepted forms, or the exact requirement. */
const HINT =
  /e\.g\.|Use memory:|use one of|must be |must not |Install it|npm install|the stores are|needs |pass (at least|your|a |options)|chmod|three slashes/;

const shapes = new Map();

async function tryConfig(c, config, secretFragments = []) {
  return c.trial(async () => {
    let store;
    try {
      store = await createCache(config);
    } catch (error) {
      judge(error, secretFragments);
      return "rejected";
    }
    expect(
      store &&
        typeof store.get === "function" &&
        typeof store.set === "function" &&
        typeof store.remove === "function",
      "createCache resolved to something that is not a store",
    );
    try {
      await store.close?.();
    } catch {}
    return "accepted";
  });
}

function judge(error, secretFragments = []) {
  g.seenError(error);
  const text = [error?.message, error?.stack, inspect(error, { depth: 6 })].join("\n");
  for (const fragment of secretFragments) {
    expect(
      !text.includes(fragment),
      () =>
        `the password from the input appears in the error (${error?.name}: ${error?.message?.slice(0, 160)})`,
    );
  }
  expect(
    error instanceof CredcacheError &&
      (error.name === "CacheConfigError" || error.name === "MissingAdapterError"),
    () => `a raw ${error?.name ?? typeof error}: ${String(error?.message).slice(0, 200)}`,
  );
  expect(typeof error.code === "string" && error.code.startsWith("ERR_CREDCACHE_"), "no .code");
  expect(
    HINT.test(error.message),
    () => `the message does not say what to fix: ${error.message.slice(0, 200)}`,
  );
  const shape = error.message.replace(/"[^"]*"/g, '"…"').slice(0, 90);
  shapes.set(shape, (shapes.get(shape) ?? 0) + 1);
}

function tally(outcomes, outcome) {
  outcomes[outcome ?? "failed"] = (outcomes[outcome ?? "failed"] ?? 0) + 1;
}

const summary = (outcomes) =>
  Object.entries(outcomes)
    .map(([k, v]) => `${v} ${k}`)
    .join(", ");

await g.check("cache URLs (createCache and parseCacheUrl)", async (c) => {
  const outcomes = {};
  for (const u of fc.sample(url, { numRuns: 1000, seed })) {
    tally(outcomes, await tryConfig(c, u.text, u.secret));
    // parseCacheUrl is public too (the CLI takes URLs): same promise.
    await c.trial(() => {
      try {
        parseCacheUrl(u.text);
      } catch (error) {
        judge(error, u.secret);
      }
    });
  }
  c.note = `seed ${seed}; ${summary(outcomes)}`;
});

await g.check("store configs ({ driver, ... })", async (c) => {
  const outcomes = {};
  for (const config of fc.sample(storeConfig, { numRuns: 1000, seed: seed + 1 }))
    tally(outcomes, await tryConfig(c, config));
  for (const config of circular()) tally(outcomes, await tryConfig(c, config));
  c.note = `seed ${seed + 1}; ${summary(outcomes)}`;
});

await g.check("named stores ({ default, stores })", async (c) => {
  const outcomes = {};
  for (const config of fc.sample(namedStores, { numRuns: 500, seed: seed + 2 }))
    tally(outcomes, await tryConfig(c, config));
  c.note = `seed ${seed + 2}; ${summary(outcomes)}`;
});

await g.check("anything at all as the config", async (c) => {
  const outcomes = {};
  for (const config of fc.sample(anyValue, { numRuns: 500, seed: seed + 3 }))
    tally(outcomes, await tryConfig(c, config));
  c.note = `seed ${seed + 3}; ${summary(outcomes)}`;
});

await g.check("Redis password never echoed (valid-looking URLs, every error path)", async (c) => {
  // Well-formed redis URLs with a password, broken in one place each.
  const broken = fc.tuple(
    password,
    fc.constantFrom("?lock=maybe", ":99999", ":abc", " ", "%zz", "?lock=", "#frag"),
  );
  for (const [p, flaw] of fc.sample(broken, { numRuns: 80, seed: seed + 4 })) {
    const forms = [
      `redis://user:${p.text}@127.0.0.1:6379/0${flaw}`,
      `redis://:${p.text}@127.0.0.1${flaw}`,
      `rediss://default:${p.text}@${flaw}`,
    ];
    for (const text of forms) {
      await tryConfig(c, text, p.fragments);
      await tryConfig(
        c,
        { driver: "redis", url: text, namespace: flaw === " " ? "" : undefined },
        p.fragments,
      );
    }
  }
  c.note = `seed ${seed + 4}`;
});

// ---- a huge memory "max" ----

await g.check('memory driver: a huge "max" is a config error, not a crash', async (c) => {
  // In a child with a bounded heap: a store that preallocates `max` slots would take the
  // whole process down with a fatal out-of-memory error that no caller can catch.
  const project = g.tmp("maxprobe");
  const script = join(project, "probe.mjs");
  writeFileSync(
    script,
    `import { createCache } from ${JSON.stringify(join(REPO_DIR, "packages/config/dist/index.js"))};
const config = JSON.parse(process.argv[2]);
try {
  const store = await createCache(config);
  await store.set("k", { v: 1 }, 0);
  console.log("@@" + JSON.stringify({ t: "result", accepted: true, rss: process.memoryUsage().rss }));
} catch (error) {
  console.log("@@" + JSON.stringify({ t: "result", name: error.name, code: error.code, message: error.message }));
}
process.exit(0);
`,
  );
  const outcomes = [];
  for (const config of [
    { driver: "memory", max: 1e6 },
    { driver: "memory", max: 1e9 },
    { driver: "memory", max: 2 ** 31 },
    { driver: "memory", max: 2 ** 32 },
    "memory:?max=1000000000",
    "memory:?max=9007199254740991",
  ]) {
    await c.trial(async () => {
      const label = JSON.stringify(config);
      const child = g.spawn(script, {
        args: [JSON.stringify(config)],
        cwd: project,
        nodeArgs: ["--max-old-space-size=64"],
        label: "maxprobe",
        timeoutMs: 60_000,
      });
      const exit = await child.exited;
      const result = child.messages.find((m) => m.t === "result");
      if (!result) {
        outcomes.push(`${label}: died`);
        throw new CheckFailure(
          `createCache(${label}) killed the process (exit ${JSON.stringify(exit)}; ${child.stderrTail
            .filter((l) => /FATAL|heap|RangeError/.test(l))
            .slice(0, 1)
            .join("")})`,
        );
      }
      outcomes.push(`${label}: ${result.accepted ? "accepted" : result.name}`);
      if (!result.accepted) {
        g.seen(result.message);
        expect(
          (result.name === "CacheConfigError" || result.name === "MissingAdapterError") &&
            String(result.code).startsWith("ERR_CREDCACHE_"),
          `${label}: a raw ${result.name}: ${String(result.message).slice(0, 160)}`,
        );
        expect(
          HINT.test(result.message),
          `${label}: the message does not say what to fix: ${result.message}`,
        );
      }
    });
  }
  c.note = outcomes.join("; ");
});

// ---- a driver whose package is not installed ----

await g.check("missing adapter package: MissingAdapterError naming the package", async (c) => {
  // A project that has @credcache/config and core (and @credcache/keyv without its peers) and nothing else.
  const project = g.tmp("project");
  const modules = join(project, "node_modules");
  for (const pkg of ["config", "core", "keyv"]) {
    const target = join(modules, "@credcache", pkg);
    mkdirSync(target, { recursive: true });
    cpSync(join(REPO_DIR, "packages", pkg, "package.json"), join(target, "package.json"));
    cpSync(join(REPO_DIR, "packages", pkg, "dist"), join(target, "dist"), { recursive: true });
  }
  mkdirSync(join(modules, "@smithy"), { recursive: true });
  symlinkSync(
    realpathSync(join(REPO_DIR, "node_modules", "@smithy", "property-provider")),
    join(modules, "@smithy", "property-provider"),
  );
  writeFileSync(join(project, "package.json"), '{ "name": "bare-app", "type": "module" }');
  const script = join(project, "probe.mjs");
  writeFileSync(
    script,
    `import { inspect } from "node:util";
import { createCache } from "@credcache/config";
const cases = JSON.parse(process.argv[2]);
for (const config of cases) {
  try {
    await createCache(config);
    console.log("@@" + JSON.stringify({ t: "result", accepted: true }));
  } catch (error) {
    console.log("@@" + JSON.stringify({ t: "result", name: error.name, code: error.code, packageName: error.packageName, message: error.message, inspected: inspect(error, { depth: 6 }) }));
  }
}
console.log("@@" + JSON.stringify({ t: "done" }));
process.exit(0);
`,
  );
  const pw = "PwMissing7Qx42secret";
  const cases = [
    { config: "sqlite:///tmp/x.db", pkg: "@credcache/sqlite" },
    { config: "file:///tmp/credcache-x", pkg: "@credcache/fs" },
    { config: "memory:", pkg: "@credcache/memory" },
    { config: { driver: "keyv", keyv: {} }, pkg: "@credcache/keyv", present: true },
    // createRedisCache has its own client: with @credcache/keyv alone, redis:// builds.
    { config: `redis://user:${pw}@127.0.0.1:6379`, pkg: "@credcache/keyv", builds: true },
  ];
  const child = g.spawn(script, {
    args: [JSON.stringify(cases.map((x) => x.config))],
    cwd: project,
    label: "missing",
  });
  const results = [];
  for (let i = 0; i < cases.length; i++) results.push(await child.waitType("result", 20_000));
  await child.waitType("done", 5000);
  for (const [i, r] of results.entries()) {
    const want = cases[i];
    await c.trial(() => {
      g.seen(r.message, r.inspected);
      expect(!`${r.message}${r.inspected}`.includes(pw), "the Redis password appears in the error");
      if (want.builds) {
        expect(r.accepted === true, `${want.config.replace(pw, "***")}: got ${r.name}: ${r.message}`);
        return;
      }
      if (want.present) {
        // The package is there; the bad keyv is a config error.
        expect(r.name === "CacheConfigError", `${JSON.stringify(want.config)}: got ${r.name}: ${r.message}`);
        return;
      }
      expect(
        r.name === "MissingAdapterError" && r.code === "ERR_CREDCACHE_MISSING_ADAPTER",
        `${JSON.stringify(want.config).slice(0, 60)}: got ${r.name}: ${String(r.message).slice(0, 160)}`,
      );
      expect(r.packageName === want.pkg, `names ${r.packageName}, expected ${want.pkg}`);
      expect(r.message.includes(`npm install ${want.pkg}`), "the message does not say what to install");
    });
  }
});

console.log("\nmost common rejection messages (quoted parts elided):");
for (const [shape, n] of [...shapes].sort((a, b) => b[1] - a[1]).slice(0, 20)) {
  console.log(`  ${String(n).padStart(5)}  ${shape}`);
}
g.finish();
