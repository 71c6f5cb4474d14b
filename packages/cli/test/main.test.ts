import { execFileSync, spawn } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { fileCache } from "@credcache/fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseArgs } from "../src/args.js";
import { resolveCacheSpec } from "../src/config.js";
import { main } from "../src/index.js";
import { assertBuilt, BIN, tempDir } from "./helpers.js";

let root: string;
beforeAll(async () => {
  root = await tempDir("main");
});
afterAll(async () => {
  const { rm } = await import("node:fs/promises");
  await rm(root, { recursive: true, force: true });
});

/** Runs main() in this process with captured output. */
async function run(argv: string[], env: Record<string, string> = {}, cwd = root) {
  let stdout = "";
  let stderr = "";
  const code = await main(argv, {
    stdout: { write: (chunk: string) => (stdout += chunk) },
    stderr: { write: (chunk: string) => (stderr += chunk) },
    env,
    cwd,
  });
  return { code, stdout, stderr };
}

const fresh = (accessKeyId: string) => ({
  v: 1,
  accessKeyId,
  secretAccessKey: "secret-secret-secret-secret-secret-0000",
  sessionToken: "token-token-token-token-token-token-0000",
  expiration: Date.now() + 2 * 3600_000,
  cachedAt: Date.now(),
  source: "test",
});

describe("parseArgs", () => {
  const spec = { cache: "string", key: "strings", json: "boolean", help: "boolean" } as const;

  it("reads --name value, --name=value, repeatable flags, -h and positionals after --", () => {
    const { flags, positionals } = parseArgs(
      ["--cache", "memory:", "--key=a", "--key", "b", "--json", "-h", "pos", "--", "--not-a-flag"],
      spec,
      "inspect",
    );
    expect(flags).toEqual({ cache: "memory:", key: ["a", "b"], json: true, help: true });
    expect(positionals).toEqual(["pos", "--not-a-flag"]);
  });

  it.each([
    [["--nope"], /unknown option --nope; run "credcache inspect --help"/],
    [["-x"], /unknown option -x/],
    [["--cache"], /--cache needs a value/],
    [["--cache", "--json"], /--cache needs a value/],
    [["--cache", "a", "--cache", "b"], /--cache is given twice/],
    [["--json=yes"], /--json takes no value/],
  ])("rejects %j", (argv, message) => {
    expect(() => parseArgs(argv, spec, "inspect")).toThrow(message);
  });
});

describe("cache configuration", () => {
  it("flags beat the environment and a URL beats a config file", () => {
    const env = { CREDCACHE_URL: "memory:", CREDCACHE_CONFIG: "/nope.json" };
    expect(resolveCacheSpec({ cache: "file:///x" }, env, root).config).toBe("file:///x");
    expect(resolveCacheSpec({}, env, root).config).toBe("memory:");
    expect(() => resolveCacheSpec({ cache: "a", config: "b" }, {}, root)).toThrow(
      /either --cache or --config/,
    );
  });

  it("hides a Redis password in labels and messages", () => {
    const spec = resolveCacheSpec({ cache: "redis://user:hunter2hunter2@127.0.0.1:6379" }, {}, root);
    expect(spec.label).toBe("redis://user:***@127.0.0.1:6379");
  });

  it.each([
    ["a password holding / (unencoded)", "redis://:pa/ss-secret@10.0.0.5:6379", "redis://:***@10.0.0.5:6379"],
    [
      "a password holding @ (unencoded)",
      "redis://u:p@ss-secret@10.0.0.5:6379",
      "redis://u:***@10.0.0.5:6379",
    ],
    ["a bare token as user info", "redis://token-secret@10.0.0.5:6379", "redis://***@10.0.0.5:6379"],
  ])("hides %s, in the label and in the --store message", (_what, url, label) => {
    expect(resolveCacheSpec({ cache: url }, {}, root).label).toBe(label);
    expect(() => resolveCacheSpec({ cache: url, store: "x" }, {}, root)).toThrow(label);
    expect(() => resolveCacheSpec({ cache: url, store: "x" }, {}, root)).not.toThrow(/secret/);
  });

  it("reads Laravel-style named stores, picks --store, and resolves relative paths against the file", async () => {
    const dir = join(root, "conf");
    await mkdir(dir, { recursive: true });
    const file = join(dir, "credcache.json");
    await writeFile(
      file,
      JSON.stringify({
        default: "file",
        stores: {
          file: { driver: "file", dir: "cache" },
          sqlite: { driver: "sqlite", path: "cache.db" },
          url: "memory:",
        },
      }),
    );
    const byDefault = resolveCacheSpec({ config: file }, {}, "/");
    expect(byDefault.config).toMatchObject({ stores: { file: { dir: join(dir, "cache") } } });
    expect(byDefault.label).toBe(`${file} (store "file")`);
    const picked = resolveCacheSpec({ config: "conf/credcache.json", store: "sqlite" }, {}, root);
    expect(picked.store).toBe("sqlite");
    expect(picked.config).toMatchObject({ stores: { sqlite: { path: join(dir, "cache.db") } } });
    expect(resolveCacheSpec({}, { CREDCACHE_CONFIG: file }, "/").label).toContain(file);
  });

  it.each([
    ["not json", "{ default: ", /is not valid JSON/],
    ["an array", "[]", /must hold a JSON object/],
  ])("rejects a config file that is %s with exit 2", async (_name, text, message) => {
    const file = join(root, `bad-${Math.random()}.json`);
    await writeFile(file, text);
    const result = await run(["inspect", "--config", file]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
  });

  it("refuses a config file that is a FIFO with exit 2 instead of waiting forever (issue 12; real child process)", async () => {
    assertBuilt();
    const fifo = join(root, `config-${Math.random()}.fifo`);
    execFileSync("mkfifo", [fifo]);
    const child = spawn(process.execPath, [BIN, "inspect", "--config", fifo], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    // Only a guard so that a hanging CLI fails the test instead of hanging it.
    const guard = setTimeout(() => child.kill("SIGKILL"), 60_000);
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    clearTimeout(guard);
    expect(code, "the CLI hung on the FIFO and was killed").toBe(2);
    expect(stderr).toMatch(/is a FIFO; --config takes a regular JSON file/);
    // A directory is refused the same way, in process.
    const result = await run(["inspect", "--config", root]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/is a directory/);
  }, 90_000);

  it("an unknown store name or driver in the config is exit 2 with core's explanation", async () => {
    const file = join(root, "stores.json");
    await writeFile(file, JSON.stringify({ default: "file", stores: { file: { driver: "floppy" } } }));
    const unknownStore = await run(["inspect", "--config", file, "--store", "redis"]);
    expect(unknownStore).toMatchObject({ code: 2, stdout: "" });
    expect(unknownStore.stderr).toMatch(/No store named "redis" in "stores"; the stores are: file/);
    const unknownDriver = await run(["inspect", "--config", file]);
    expect(unknownDriver.code).toBe(2);
    expect(unknownDriver.stderr).toMatch(/Unknown cache driver "floppy"/);
  });
});

describe("inspect shows each entry's window as credcache process sees it", () => {
  it("long-term keys with the time they are kept; sets judged by the CLI's 25 / 20 min windows", async () => {
    const dir = join(root, "store-windows");
    const store = fileCache({ dir });
    const now = Date.now();
    const { expiration: _none, ...longTerm } = fresh("AKIALONGTERMKEY00001");
    await store.set("static-new", { ...longTerm, cachedAt: now - 60_000 }, 0);
    await store.set("static-old", { ...longTerm, cachedAt: now - 20 * 60_000 }, 0);
    // 22 min left: fresh with core's 15 / 10 min defaults, advisory with the CLI's windows.
    await store.set("near", { ...fresh("ASIANEARNEARNEAR0001"), expiration: now + 22 * 60_000 }, 0);
    await store.close();
    const env = { CREDCACHE_URL: pathToFileURL(dir).href };
    const inspected = await run(
      ["inspect", "--key", "static-new", "--key", "static-old", "--key", "near", "--json"],
      env,
    );
    expect(inspected.code, inspected.stderr).toBe(0);
    const byKey = Object.fromEntries(
      (JSON.parse(inspected.stdout).entries as Array<{ key: string; expiresInSeconds: number }>).map(
        (entry) => [entry.key, entry],
      ),
    );
    // Before: "never" and "fresh" for both static entries, although they are dropped after 15 min.
    expect(byKey["static-new"]).toMatchObject({ expiration: null, window: "fresh" });
    expect(byKey["static-new"]?.expiresInSeconds).toBeGreaterThan(13 * 60);
    expect(byKey["static-new"]?.expiresInSeconds).toBeLessThanOrEqual(14 * 60);
    expect(byKey["static-old"]).toMatchObject({ expiration: null, window: "expired" });
    expect(byKey.near).toMatchObject({ window: "advisory" });
    const table = await run(["inspect", "--key", "static-new"], env);
    expect(table.stdout).toMatch(/^static-new\s.*kept until \d{4}-\d\d-\d\dT.*\s1[34]m \d+s\s+fresh$/m);
  });
});

describe("control characters from a store never reach the terminal raw", () => {
  const PLANTED = "\u001b[2J\u001b]0;pwned\u0007\u009b31m";
  // biome-ignore lint/suspicious/noControlCharactersInRegex: what must never be printed raw.
  const RAW = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

  it("inspect escapes a planted key name in the table and in --json", async () => {
    const dir = join(root, "store-planted");
    const store = fileCache({ dir });
    await store.set(`app${PLANTED}`, fresh("ASIAPLANTEDPLANTED01"), 7200);
    await store.close();
    const env = { CREDCACHE_URL: pathToFileURL(dir).href };
    const table = await run(["inspect"], env);
    expect(table.code, table.stderr).toBe(0);
    // Before: the key was printed raw (clears the screen, sets the window title).
    expect(table.stdout).not.toMatch(RAW);
    expect(table.stdout).toContain("app\\x1b[2J\\x1b]0;pwned\\x07\\x9b31m");
    const json = await run(["inspect", "--json"], env);
    expect(json.stdout).not.toMatch(RAW);
    const keys = (JSON.parse(json.stdout).entries as Array<{ key: string }>).map((entry) => entry.key);
    expect(keys).toContain(`app${PLANTED}`);
  });
});

describe("main() in-process", () => {
  it("inspects, clears and prunes a file store named in a config file via CREDCACHE_CONFIG", async () => {
    const dir = join(root, "store-a");
    const store = fileCache({ dir });
    await store.set("app", fresh("ASIAAPPAPPAPPAPP1234"), 7200);
    await store.set("old", { ...fresh("ASIAOLDOLDOLDOLD9876"), expiration: Date.now() - 1000 }, 0);
    await store.close();
    const file = join(root, "a.json");
    await writeFile(file, JSON.stringify({ default: "local", stores: { local: { driver: "file", dir } } }));
    const env = { CREDCACHE_CONFIG: file };

    const inspected = await run(["inspect", "--key", "app", "--key", "old", "--json"], env);
    expect(inspected.code, inspected.stderr).toBe(0);
    expect(inspected.stdout).not.toContain("secret-secret");
    expect(inspected.stdout).not.toContain("token-token");
    const { entries } = JSON.parse(inspected.stdout);
    expect(entries).toContainEqual(
      expect.objectContaining({ key: "app", accessKeyId: "ASIA…1234", window: "fresh", source: "test" }),
    );
    expect(entries).toContainEqual(expect.objectContaining({ key: "old", window: "expired" }));

    const text = await run(["inspect", "--key", "old"], env);
    expect(text.stdout).toMatch(/^old\s+test\s+ASIA…9876\s.*ago\s+expired$/m);

    const pruned = await run(["prune", "--key", "old", "--key", "app"], env);
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(pruned.stdout).toMatch(/records checked: \d+, removed: 1/);

    const cleared = await run(["clear", "app"], env);
    expect(cleared.stdout).toBe("removed app\n");
    const after = await run(["inspect", "--key", "app", "--key", "old", "--json"], env);
    expect(JSON.parse(after.stdout).entries).toEqual([
      { key: "app", status: "missing" },
      { key: "old", status: "missing" },
    ]);
  });

  it("help, version and unknown commands", async () => {
    expect((await run(["help", "inspect"])).stdout).toContain("Usage: credcache inspect");
    expect((await run(["help", "nope"])).code).toBe(2);
    expect((await run(["--version"])).stdout).toMatch(/^\d+\.\d+\.\d+/);
    expect(await run(["nope"])).toMatchObject({ code: 2, stdout: "" });
  });

  it("process refuses a credential_process loop through a profile", async () => {
    const result = await run(
      ["process", "--source", "profile:app", "--cache", pathToFileURL(join(root, "loop")).href],
      { CREDCACHE_PROCESS_CHAIN: "imds profile:app" },
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/leads back to credcache itself \(imds -> profile:app -> profile:app\)/);
  });
});

describe("oneLine", () => {
  it("drops the piece of input V8 quotes in JSON errors, and known secrets", async () => {
    const { oneLine } = await import("../src/errors.js");
    let message = "";
    try {
      JSON.parse('X{"SecretAccessKey":"wJalrXUtnFEMI/K7MDENG"}');
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain("is not valid JSON");
    const line = oneLine(`could not get credentials: ${message}\nsecond line wJalrXUtnFEMIsecret`, [
      "wJalrXUtnFEMIsecret",
    ]);
    expect(line).toBe(
      "could not get credentials: Unexpected token 'X', input that is not valid JSON second line [redacted]",
    );
  });
});
