import { execFileSync } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { inspect } from "node:util";
import { CacheConfigError, redactUrl } from "@credcache/core";
import KeyvSqlite from "@keyv/sqlite";
import { Keyv } from "keyv";
import { describe, expect, it } from "vitest";
import { describeWithRedis, TEST_REDIS_URL } from "../../../test/support/redis.mjs";
import { createCache, parseCacheUrl, resolveStoreConfig } from "../src/index.js";

const packagesDir = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/**
 * Copies the built @credcache/config and @credcache/core into `dir`/node_modules, as an
 * install would (core's only dependency is types; config's is core): no adapter at all.
 */
function installConfig(dir: string): void {
  for (const name of ["config", "core"]) {
    const target = join(dir, "node_modules", "@credcache", name);
    mkdirSync(target, { recursive: true });
    cpSync(join(packagesDir, name, "dist"), join(target, "dist"), { recursive: true });
    writeFileSync(join(target, "package.json"), readFileSync(join(packagesDir, name, "package.json")));
  }
}

describe("parseCacheUrl", () => {
  it("understands every scheme", () => {
    expect(parseCacheUrl("memory:")).toEqual({ driver: "memory" });
    expect(parseCacheUrl("memory://?max=5")).toEqual({ driver: "memory", max: 5 });
    expect(parseCacheUrl("file:///var/cache/credcache")).toEqual({
      driver: "file",
      dir: "/var/cache/credcache",
    });
    expect(parseCacheUrl("file:")).toEqual({ driver: "file" });
    expect(parseCacheUrl("sqlite:///var/cache/c.db")).toEqual({ driver: "sqlite", path: "/var/cache/c.db" });
    expect(parseCacheUrl("redis://127.0.0.1:6379/2?namespace=app")).toEqual({
      driver: "redis",
      url: "redis://127.0.0.1:6379/2",
      namespace: "app",
    });
  });

  const bad: Array<[string, RegExp]> = [
    ["", /empty/],
    ["   ", /empty/],
    ["not a url", /not a valid cache URL.*memory:/],
    ["ftp://host/x", /Unknown cache URL scheme "ftp:".*redis:\/\//],
    ["memory://?max=-1", /max .* positive integer/],
    ["file://host/dir", /three slashes/],
    ["sqlite:///", /no database file name/],
    // Issue 19: a URL is not relative to the working directory.
    ["sqlite://relative.db", /not an absolute path.*three slashes/],
    ["sqlite:relative.db", /not an absolute path.*three slashes/],
    ["sqlite://var/cache/c.db", /not an absolute path.*three slashes/],
    ["file://relative", /three slashes and an absolute path/],
    ["redis:///0", /no host/],
    ["redis://h:1?lock=maybe", /lock .* true or false/],
    ["file:///a%2Fb", /not a usable directory path/],
    ["sqlite:///%E0%A4%A", /malformed %-escape/],
  ];
  for (const [url, message] of bad) {
    it(`rejects ${JSON.stringify(url)} with a CacheConfigError that says what to fix`, () => {
      expect(() => parseCacheUrl(url)).toThrow(CacheConfigError);
      expect(() => parseCacheUrl(url)).toThrow(message);
    });
  }

  it("never puts a Redis password in an error", () => {
    // What parseCacheUrl throws for `url`, if anything.
    const errorOf = (url: string): Error | undefined => {
      try {
        parseCacheUrl(url);
      } catch (error) {
        return error as Error;
      }
      return undefined;
    };
    expect(errorOf("rediss://user:hunter2secret@/x")?.message ?? "").not.toContain("hunter2secret");
    expect(redactUrl("redis://u:pw@h:1")).toBe("redis://***@h:1");
    // A password holding "@", "#", "?" or "/", and a URL without "//".
    expect(redactUrl("redis://:p@ss@h:1/0")).toBe("redis://***@h:1/0");
    expect(redactUrl("redis://:p#s?s/w@h:1")).toBe("redis://***@h:1");
    expect(redactUrl("redis:user:pw@host")).toBe("redis:***@host");
    expect(redactUrl("redis://h:1/0")).toBe("redis://h:1/0");
    // Node's URL error quotes its input: the config error must not carry it as a cause.
    expect(inspect(errorOf("redis://:hunter2secret@[bad"), { depth: 10 })).not.toContain("hunter2secret");
    expect(errorOf("sqlite://u:hunter2secret@h/")?.message ?? "").not.toContain("hunter2secret");
  });
});

describe("resolveStoreConfig", () => {
  it("reads CREDCACHE_URL when no config is given", () => {
    const saved = process.env.CREDCACHE_URL;
    process.env.CREDCACHE_URL = "sqlite:///tmp/x.db";
    try {
      expect(resolveStoreConfig(undefined)).toEqual({ driver: "sqlite", path: "/tmp/x.db" });
      delete process.env.CREDCACHE_URL;
      expect(() => resolveStoreConfig(undefined)).toThrow(/CREDCACHE_URL/);
    } finally {
      if (saved === undefined) delete process.env.CREDCACHE_URL;
      else process.env.CREDCACHE_URL = saved;
    }
  });

  it("picks the default of Laravel-style named stores, or the one asked for", () => {
    const config = { default: "file", stores: { file: { driver: "file" as const }, mem: "memory:" } };
    expect(resolveStoreConfig(config)).toEqual({ driver: "file" });
    expect(resolveStoreConfig(config, "mem")).toEqual({ driver: "memory" });
    expect(() => resolveStoreConfig(config, "redis")).toThrow(/No store named "redis".*file, mem/);
    expect(() => resolveStoreConfig({ default: "x", stores: [] as never })).toThrow(
      /"stores" must be an object/,
    );
  });

  it("rejects unknown drivers and wrong shapes", () => {
    expect(() => resolveStoreConfig({ driver: "mongo" } as never)).toThrow(
      /Unknown cache driver "mongo"; use one of: memory, file/,
    );
    expect(() => resolveStoreConfig(42 as never)).toThrow(/URL string or an object/);
    expect(() => resolveStoreConfig([] as never)).toThrow(/an array/);
  });
});

describe("createCache", () => {
  it("loads adapters through importAdapter when given (strict layouts)", async () => {
    const asked: string[] = [];
    const cache = await createCache("memory:", {
      importAdapter: async (name) => {
        asked.push(name);
        return import("@credcache/memory");
      },
    });
    await cache.set("k", { a: 1 });
    expect(await cache.get("k")).toEqual({ a: 1 });
    expect(asked).toEqual(["@credcache/memory"]);
  });

  it("leaves each driver's options to the driver: one check, its message", async () => {
    await expect(createCache({ driver: "memory", max: 0 })).rejects.toThrow(
      /memoryCache: "max" must be a positive integer/,
    );
    await expect(createCache("memory:?max=1000000000")).rejects.toThrow(/at most 1000000/);
    await expect(createCache({ driver: "memory", max: 2 ** 31 })).rejects.toThrow(/at most 1000000/);
    await expect(createCache({ driver: "sqlite" } as never)).rejects.toThrow(
      /"path" must be a database file/,
    );
    await expect(createCache({ driver: "keyv" } as never)).rejects.toThrow(/pass a Keyv instance/);
    await expect(createCache({ driver: "redis", url: "http://x" })).rejects.toThrow(/redis:\/\//);
    await expect(createCache({ driver: "memory", encryptionKeys: [] })).rejects.toThrow(/encryptionKeys/);
    // Values that JSON cannot show still give a typed config error, not a TypeError.
    await expect(createCache({ driver: "memory", max: 10n } as never)).rejects.toBeInstanceOf(
      CacheConfigError,
    );
    await expect(createCache({ driver: "sqlite", path: 10n } as never)).rejects.toBeInstanceOf(
      CacheConfigError,
    );
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    await expect(createCache({ driver: "file", dir: cyclic } as never)).rejects.toBeInstanceOf(
      CacheConfigError,
    );
  });

  it("builds a memory store from memory: URLs, max included", async () => {
    const store = await createCache("memory:?max=2");
    await store.set("a", 1);
    await store.set("b", 2);
    await store.set("c", 3);
    expect(await store.get("a")).toBeUndefined();
    expect(await store.get("c")).toBe(3);
  });

  it("builds a keyv store around the caller's Keyv, in the config's namespace", async () => {
    const dir = mkdtempSync(join(tmpdir(), "credcache-config-keyv-"));
    const sqliteKeyv = () =>
      new Keyv({ store: new KeyvSqlite(`sqlite://${join(dir, "keyv.db")}`), throwOnErrors: true });
    const keyv = sqliteKeyv();
    const store = await createCache({ driver: "keyv", keyv, namespace: "cfg" });
    await store.set("k", { via: "createCache" });
    const { keyvCache } = await import("@credcache/keyv");
    const reader = sqliteKeyv();
    expect(await keyvCache(reader).get("cfg:k")).toEqual({ via: "createCache" });
    await Promise.all([keyv.disconnect(), reader.disconnect()]);
  });

  it("names the package to install when an adapter is missing (real install layout, child process)", () => {
    // An application directory holding @credcache/config and core, but no adapter.
    const app = mkdtempSync(join(tmpdir(), "credcache-missing-"));
    installConfig(app);
    writeFileSync(join(app, "package.json"), '{"type":"module"}');
    const script = `
      import { MissingAdapterError } from "@credcache/core";
      import { createCache } from "@credcache/config";
      try { await createCache("sqlite:///tmp/x.db"); console.log("no error"); }
      catch (e) { console.log(JSON.stringify({ is: e instanceof MissingAdapterError, code: e.code, pkg: e.packageName, message: e.message })); }
    `;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
      cwd: app,
      encoding: "utf8",
      // npx/pnpm put the workspace's node_modules on NODE_PATH; a real app has no such path.
      env: { ...process.env, NODE_PATH: "" },
    });
    const result = JSON.parse(out.trim().split("\n").at(-1)!);
    expect(result).toMatchObject({
      is: true,
      code: "ERR_CREDCACHE_MISSING_ADAPTER",
      pkg: "@credcache/sqlite",
    });
    expect(result.message).toContain("npm install @credcache/sqlite");
  });
});

describe("createCache adapter loading (issue 12: no code from the working directory)", () => {
  /** A directory holding copies of the built @credcache/config and core and nothing else. */
  function coreInstall(): string {
    const dir = mkdtempSync(join(tmpdir(), "credcache-config-"));
    installConfig(dir);
    return pathToFileURL(join(dir, "node_modules", "@credcache", "config", "dist", "index.js")).href;
  }

  /** A fake `@credcache/memory` under `dir` whose module body is `body`. */
  function plantMemoryAdapter(dir: string, body: string): void {
    const pkg = join(dir, "node_modules", "@credcache", "memory");
    mkdirSync(pkg, { recursive: true });
    writeFileSync(
      join(pkg, "package.json"),
      JSON.stringify({
        name: "@credcache/memory",
        type: "module",
        exports: { ".": { import: "./index.js" } },
      }),
    );
    writeFileSync(join(pkg, "index.js"), body);
  }

  /** Runs `node <app>/main.mjs` from `cwd`; main.mjs calls createCache("memory:") of the config package at `coreUrl`. */
  function runApp(app: string, cwd: string, coreUrl: string) {
    const script = `
      const { createCache } = await import(${JSON.stringify(coreUrl)});
      try {
        const cache = await createCache("memory:");
        await cache.set("k", { a: 1 });
        console.log(JSON.stringify({ ok: true, value: await cache.get("k") }));
      } catch (e) {
        console.log(JSON.stringify({ ok: false, name: e.name, code: e.code, message: e.message }));
      }
    `;
    writeFileSync(join(app, "main.mjs"), script);
    const out = execFileSync(process.execPath, [join(app, "main.mjs")], {
      cwd,
      encoding: "utf8",
      env: { ...process.env, NODE_PATH: "" },
    });
    return JSON.parse(out.trim().split("\n").at(-1)!);
  }

  it("never runs a node_modules/@credcache/memory planted in the working directory (real child process)", () => {
    const coreUrl = coreInstall();
    const app = mkdtempSync(join(tmpdir(), "credcache-app-"));
    const attacker = mkdtempSync(join(tmpdir(), "credcache-cwd-"));
    const marker = join(attacker, "PLANTED-CODE-RAN");
    plantMemoryAdapter(
      attacker,
      `import { writeFileSync } from "node:fs"; writeFileSync(${JSON.stringify(marker)}, "ran");
       export function memoryCache() { return { get: async () => undefined, set: async () => {}, remove: async () => {} }; }`,
    );
    const result = runApp(app, attacker, coreUrl);
    expect(existsSync(marker), "the planted adapter ran").toBe(false);
    expect(result).toMatchObject({ ok: false, code: "ERR_CREDCACHE_MISSING_ADAPTER" });
  });

  it("loads the adapter the application depends on when the config package is installed elsewhere", () => {
    const coreUrl = coreInstall();
    const app = mkdtempSync(join(tmpdir(), "credcache-app-"));
    mkdirSync(join(app, "node_modules", "@credcache"), { recursive: true });
    symlinkSync(join(packagesDir, "memory"), join(app, "node_modules", "@credcache", "memory"));
    const elsewhere = mkdtempSync(join(tmpdir(), "credcache-cwd-"));
    expect(runApp(app, elsewhere, coreUrl)).toEqual({ ok: true, value: { a: 1 } });
  });

  it("a missing dependency of a found adapter is reported as it is, not as a missing adapter", () => {
    const coreUrl = coreInstall();
    const app = mkdtempSync(join(tmpdir(), "credcache-app-"));
    plantMemoryAdapter(app, `import "credcache-no-such-dependency"; export function memoryCache() {}`);
    const result = runApp(app, app, coreUrl);
    expect(result).toMatchObject({ ok: false, code: "ERR_MODULE_NOT_FOUND" });
    expect(result.message).toContain("credcache-no-such-dependency");
  });

  it("takes adapter modules passed in `adapters` without resolving anything", async () => {
    const memory = await import("@credcache/memory");
    const cache = await createCache("memory:", {
      adapters: { "@credcache/memory": memory },
      importAdapter: () => Promise.reject(new Error("not called")),
    });
    await cache.set("k", 1);
    expect(await cache.get("k")).toBe(1);
    await expect(
      createCache("memory:", { adapters: { "@credcache/memory": "nope" } }),
    ).rejects.toBeInstanceOf(CacheConfigError);
  });
});

describeWithRedis("createCache on Redis (the test run's redis-server)", () => {
  it("builds the Redis store, with its lock, from a redis:// URL", async () => {
    const url = TEST_REDIS_URL as string;
    const namespace = `config-${process.pid}`;
    const store = await createCache(`${url}?namespace=${namespace}`);
    await store.set("k", { via: "url" });
    expect(store.acquireLock).toBeTypeOf("function");
    const { createRedisCache } = await import("@credcache/keyv");
    const reader = await createRedisCache({ url, namespace });
    expect(await reader.get("k")).toEqual({ via: "url" });
    await store.remove("k");
    await Promise.all([store.close?.(), reader.close?.()]);
    await expect(createCache(`${url}?namespace=app:`)).rejects.toThrow(/must not contain ":"/);
  });
});
