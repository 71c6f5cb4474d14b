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
import { describe, expect, it } from "vitest";
import { CacheConfigError, createCache, parseCacheUrl, redactUrl, resolveStoreConfig } from "../src/index.js";

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
    expect(parseCacheUrl("sqlite:relative/c.db")).toEqual({ driver: "sqlite", path: "relative/c.db" });
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
    ["redis:///0", /no host/],
    ["redis://h:1?lock=maybe", /lock .* true or false/],
    ["file:///a%2Fb", /not a usable directory path/],
    ["sqlite:///%E0%A4%A", /malformed %-escape/],
    ["memory://?max=1000000000", /at most 1000000/],
  ];
  for (const [url, message] of bad) {
    it(`rejects ${JSON.stringify(url)} with a CacheConfigError that says what to fix`, () => {
      expect(() => parseCacheUrl(url)).toThrow(CacheConfigError);
      expect(() => parseCacheUrl(url)).toThrow(message);
    });
  }

  it("never puts a Redis password in an error", () => {
    let message = "";
    try {
      parseCacheUrl("rediss://user:hunter2secret@/x");
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).not.toContain("hunter2secret");
    expect(redactUrl("redis://u:pw@h:1")).toBe("redis://***@h:1");
    // A password holding "@", "#", "?" or "/", and a URL without "//".
    expect(redactUrl("redis://:p@ss@h:1/0")).toBe("redis://***@h:1/0");
    expect(redactUrl("redis://:p#s?s/w@h:1")).toBe("redis://***@h:1");
    expect(redactUrl("redis:user:pw@host")).toBe("redis:***@host");
    expect(redactUrl("redis://h:1/0")).toBe("redis://h:1/0");
    // Node's URL error quotes its input: the config error must not carry it as a cause.
    let caught: unknown;
    try {
      parseCacheUrl("redis://:hunter2secret@[bad");
    } catch (error) {
      caught = error;
    }
    expect(inspect(caught, { depth: 10 })).not.toContain("hunter2secret");
    let sqlite = "";
    try {
      parseCacheUrl("sqlite://u:hunter2secret@h/");
    } catch (error) {
      sqlite = (error as Error).message;
    }
    expect(sqlite).not.toContain("hunter2secret");
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

  it("validates driver options before loading anything", async () => {
    await expect(createCache({ driver: "memory", max: 0 })).rejects.toThrow(
      /"max" must be a positive integer/,
    );
    await expect(createCache({ driver: "sqlite" } as never)).rejects.toThrow(
      /"path" must be the database file/,
    );
    await expect(createCache({ driver: "keyv" } as never)).rejects.toThrow(/pass your Keyv instance/);
    await expect(createCache({ driver: "redis", url: "http://x" })).rejects.toThrow(/redis:\/\//);
    await expect(createCache({ driver: "memory", encryptionKeys: [] })).rejects.toThrow(/encryptionKeys/);
    // Values that JSON cannot show still give a typed config error, not a TypeError.
    await expect(createCache({ driver: "memory", max: 10n } as never)).rejects.toBeInstanceOf(
      CacheConfigError,
    );
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    await expect(createCache({ driver: "file", dir: cyclic } as never)).rejects.toBeInstanceOf(
      CacheConfigError,
    );
    await expect(createCache({ driver: "memory", max: 2 ** 31 })).rejects.toThrow(/up to 1000000/);
  });

  it("names the package to install when an adapter is missing (real install layout, child process)", () => {
    // An application directory holding @credcache/core and its own dependencies, but no adapter.
    const here = dirname(fileURLToPath(import.meta.url));
    const coreDir = join(here, "..");
    const app = mkdtempSync(join(tmpdir(), "credcache-missing-"));
    const target = join(app, "node_modules", "@credcache", "core");
    mkdirSync(target, { recursive: true });
    cpSync(join(coreDir, "dist"), join(target, "dist"), { recursive: true });
    writeFileSync(join(target, "package.json"), readFileSync(join(coreDir, "package.json")));
    // core has no runtime dependencies: nothing else to install.
    writeFileSync(join(app, "package.json"), '{"type":"module"}');
    const script = `
      import { createCache, MissingAdapterError } from "@credcache/core";
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
  const coreDir = join(dirname(fileURLToPath(import.meta.url)), "..");

  /** A directory holding a copy of the built @credcache/core and nothing else (core has no runtime dependencies). */
  function coreInstall(): string {
    const dir = mkdtempSync(join(tmpdir(), "credcache-core-"));
    const target = join(dir, "node_modules", "@credcache", "core");
    mkdirSync(target, { recursive: true });
    cpSync(join(coreDir, "dist"), join(target, "dist"), { recursive: true });
    writeFileSync(join(target, "package.json"), readFileSync(join(coreDir, "package.json")));
    return pathToFileURL(join(target, "dist", "index.js")).href;
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

  /** Runs `node <app>/main.mjs` from `cwd`; main.mjs calls createCache("memory:") on core at `coreUrl`. */
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

  it("loads the adapter the application depends on when core is installed elsewhere", () => {
    const coreUrl = coreInstall();
    const app = mkdtempSync(join(tmpdir(), "credcache-app-"));
    mkdirSync(join(app, "node_modules", "@credcache"), { recursive: true });
    symlinkSync(join(coreDir, "..", "memory"), join(app, "node_modules", "@credcache", "memory"));
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
