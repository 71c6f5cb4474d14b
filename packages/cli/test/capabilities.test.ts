import { createCache } from "@credcache/config";
import type { CredentialCache } from "@credcache/core";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { main } from "../src/index.js";

// The optional store capabilities (keys(), prune()) are exercised through a store that has
// them: createCache is wrapped so a test can hand main() its own store.
vi.mock("@credcache/config", async (importOriginal) => {
  const config = await importOriginal<typeof import("@credcache/config")>();
  return { ...config, createCache: vi.fn(config.createCache) };
});

const fresh = (accessKeyId: string, expiration = Date.now() + 2 * 3600_000) => ({
  v: 1,
  accessKeyId,
  secretAccessKey: "secret-secret-secret-secret-secret-0000",
  expiration,
  cachedAt: Date.now(),
});

function storeWith(entries: Record<string, unknown>, extra: object = {}) {
  const data = new Map(Object.entries(entries));
  const store: CredentialCache = {
    get: async (key) => data.get(key),
    set: async (key, value) => void data.set(key, value),
    remove: async (key) => void data.delete(key),
    close: vi.fn(async () => {}),
    ...extra,
  };
  vi.mocked(createCache).mockResolvedValueOnce(store);
  return { data, store };
}

async function run(argv: string[]) {
  let stdout = "";
  let stderr = "";
  const code = await main(argv, {
    stdout: { write: (chunk: string) => (stdout += chunk) },
    stderr: { write: (chunk: string) => (stderr += chunk) },
    env: { CREDCACHE_URL: "memory:" },
  });
  return { code, stdout, stderr };
}

beforeEach(() => {
  vi.mocked(createCache).mockClear();
});

describe("stores with keys()", () => {
  it("inspect lists every entry the store holds", async () => {
    const { data, store } = storeWith({
      one: fresh("ASIAONEONEONEONE1111"),
      two: fresh("ASIATWOTWOTWOTWO2222"),
    });
    Object.assign(store, { keys: async () => [...data.keys()] });
    const result = await run(["inspect", "--json"]);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.listedKeys).toBe(true);
    expect(report.entries.map((e: { key: string }) => e.key)).toEqual(["one", "two"]);
    expect(store.close).toHaveBeenCalledOnce();
  });

  it("accepts an async iterable from keys()", async () => {
    const { data, store } = storeWith({ one: fresh("ASIAONEONEONEONE1111") });
    Object.assign(store, {
      keys: async function* () {
        yield* data.keys();
      },
    });
    const result = await run(["inspect", "--json"]);
    expect(JSON.parse(result.stdout).entries).toHaveLength(1);
  });

  it("clear with no key removes every entry", async () => {
    const { data, store } = storeWith({
      one: fresh("ASIAONEONEONEONE1111"),
      two: fresh("ASIATWOTWOTWOTWO2222"),
    });
    Object.assign(store, { keys: async () => [...data.keys()] });
    const result = await run(["clear"]);
    expect(result).toMatchObject({ code: 0, stdout: "removed 2 entries from memory:\n" });
    expect(data.size).toBe(0);
  });

  it("prune calls the store's prune() and then drops records that are expired or invalid", async () => {
    const prune = vi.fn(async () => 3);
    const { data, store } = storeWith(
      {
        good: fresh("ASIAGOODGOODGOOD1111"),
        old: fresh("ASIAOLDOLDOLDOLD2222", Date.now() - 1),
        junk: "junk",
      },
      { prune },
    );
    Object.assign(store, { keys: async () => [...data.keys()] });
    const result = await run(["prune"]);
    expect(result.code, result.stderr).toBe(0);
    expect(prune).toHaveBeenCalledOnce();
    expect(result.stdout).toBe(
      "removed 5 expired or unreadable entries from memory: (store prune: 3; records checked: 3, removed: 2)\n",
    );
    expect([...data.keys()]).toEqual(["good"]);
  });
});

describe("stores without keys()", () => {
  it("clear with no key is a usage error that names the keys to pass", async () => {
    storeWith({});
    const result = await run(["clear"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(
      /^credcache clear: memory: cannot list its keys, so clear needs the keys to remove/,
    );
    expect(result.stderr).toContain('"aws_cached_credentials"');
  });

  it("inspect shows well-known keys that exist and says it could not list the rest", async () => {
    storeWith({ aws_cached_credentials: fresh("ASIAPHPPHPPHPPHP4444") });
    const result = await run(["inspect"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^aws_cached_credentials\s+-\s+ASIA…4444\s/m);
    expect(result.stdout).toContain("this store cannot list its keys");
  });

  it("a store that throws on get is exit 1 for that entry, with the error in place", async () => {
    storeWith({}, { get: async () => Promise.reject(new Error("disk on fire")) });
    const result = await run(["inspect", "--key", "x", "--json"]);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout).entries).toContainEqual({
      key: "x",
      status: "error",
      error: 'reading "x": disk on fire',
    });
  });
});
