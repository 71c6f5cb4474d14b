import { createHash } from "node:crypto";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { instanceMetadataKey, truncateAccessKeyId } from "@credcache/core";
import { entryFileName, fileCache } from "@credcache/fs";
import { type ImdsEmulator, startImdsEmulator } from "@credcache/imds-emulator";
import { sqliteCache } from "@credcache/sqlite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, CliRunner, lines, tempDir } from "./helpers.js";

let emulator: ImdsEmulator;
let cli: CliRunner;
let root: string;
let imdsKey: string;
let n = 0;

function freshDir(): string {
  n += 1;
  return join(root, `cache-${n}`);
}

/** Every secret that went to stdout in this file, to check inspect output against. */
function assertNoSecrets(text: string): void {
  for (const secret of emulator.secretsIssued()) expect(text.includes(secret)).toBe(false);
}

beforeAll(async () => {
  assertBuilt();
  emulator = await startImdsEmulator({ port: 0 });
  cli = new CliRunner({ AWS_EC2_METADATA_SERVICE_ENDPOINT: emulator.url });
  root = await tempDir("commands");
  imdsKey = instanceMetadataKey({ env: { AWS_EC2_METADATA_SERVICE_ENDPOINT: emulator.url } });
});

afterAll(async () => {
  const stderr = cli.stderrLog.join("\n");
  for (const secret of emulator.secretsIssued()) expect(stderr.includes(secret)).toBe(false);
  await emulator.close();
  const { rm } = await import("node:fs/promises");
  await rm(root, { recursive: true, force: true });
});

async function warm(cache: string): Promise<void> {
  const run = await cli.run(["process", "--source", "imds", "--cache", cache]);
  expect(run.code, run.stderr).toBe(0);
}

describe.each(["file", "sqlite"] as const)("inspect, clear and prune on a %s store", (kind) => {
  const url = () => (kind === "file" ? pathToFileURL(freshDir()).href : `sqlite://${freshDir()}.db`);

  it("inspect --json shows the entry with a truncated key id and its window, never a secret", async () => {
    const cache = url();
    await warm(cache);
    const run = await cli.run(["inspect", "--cache", cache, "--json"]);
    expect(run).toMatchObject({ code: 0, stderr: "" });
    assertNoSecrets(run.stdout);
    const report = JSON.parse(run.stdout);
    const current = emulator.currentCredentials();
    expect(report.store).toBe(cache);
    const entry = report.entries.find((e: { key: string }) => e.key === imdsKey);
    expect(entry).toMatchObject({
      status: "ok",
      source: "imds",
      accessKeyId: truncateAccessKeyId(current.accessKeyId),
      expiration: current.expiration.toISOString(),
      window: "fresh",
    });
    expect(entry.expiresInSeconds).toBeGreaterThan(5 * 3600);
    expect(run.stdout).not.toContain(current.accessKeyId);
  });

  it("inspect prints a table with the key, truncated id, time left and window", async () => {
    const cache = url();
    await warm(cache);
    const run = await cli.run(["inspect", "--cache", cache]);
    expect(run).toMatchObject({ code: 0, stderr: "" });
    assertNoSecrets(run.stdout);
    const current = emulator.currentCredentials();
    const row = lines(run.stdout).find((line) => line.startsWith(imdsKey));
    expect(row).toBeDefined();
    expect(row).toContain(truncateAccessKeyId(current.accessKeyId));
    expect(row).toMatch(/\s5h \d+m\s+fresh$/);
    expect(run.stdout).toMatch(/^Store: /);
  });

  it("inspect --key reports a missing key; an invalid record shows its reason", async () => {
    const dir = freshDir();
    const store = kind === "file" ? fileCache({ dir }) : sqliteCache({ path: `${dir}.db` });
    await store.set("garbage", { v: 7 }, 0);
    await store.close?.();
    const cache = kind === "file" ? pathToFileURL(dir).href : `sqlite://${dir}.db`;
    const run = await cli.run(["inspect", "--cache", cache, "--key", "garbage", "--key", "absent", "--json"]);
    expect(run.code).toBe(0);
    const { entries } = JSON.parse(run.stdout);
    expect(entries).toContainEqual({ key: "garbage", status: "invalid", reason: "wrong-version" });
    expect(entries).toContainEqual({ key: "absent", status: "missing" });
  });

  it("a corrupt entry file is shown as invalid and removed; clear counts it as present", async () => {
    if (kind !== "file") return;
    const dir = freshDir();
    const store = fileCache({ dir });
    await store.set("broken", { v: 1 }, 0);
    writeFileSync(join(dir, entryFileName("broken")), "{torn", { mode: 0o600 });
    const cache = pathToFileURL(dir).href;
    const inspected = await cli.run(["inspect", "--cache", cache, "--key", "broken", "--json"]);
    expect(inspected.code).toBe(0);
    expect(JSON.parse(inspected.stdout).entries).toContainEqual({
      key: "broken",
      status: "invalid",
      reason: "unparseable, removed",
    });
    writeFileSync(join(dir, entryFileName("broken")), "{torn", { mode: 0o600 });
    const cleared = await cli.run(["clear", "--cache", cache, "broken"]);
    expect(cleared.code).toBe(0);
    expect(cleared.stdout).toContain("removed broken");
  });

  it("clear --source imds removes the entry; the next process fetches again", async () => {
    const cache = url();
    await warm(cache);
    const cleared = await cli.run(["clear", "--source", "imds", "--cache", cache]);
    expect(cleared).toMatchObject({ code: 0, stdout: `removed ${imdsKey}\n`, stderr: "" });
    const again = await cli.run(["clear", imdsKey, "--cache", cache]);
    expect(again.stdout).toBe(`not cached: ${imdsKey}\n`);
    emulator.resetStats();
    await warm(cache);
    expect(emulator.stats.credentialFetches).toBe(1);
  });

  it("clear without a key: everything when the store lists keys, else exit 2 naming the keys to pass", async () => {
    const cache = url();
    await warm(cache);
    const run = await cli.run(["clear", "--cache", cache]);
    if (run.code === 0) {
      expect(run.stdout).toMatch(/^removed 1 entry from /);
    } else {
      expect(run.code).toBe(2);
      expect(lines(run.stderr)).toHaveLength(1);
      expect(run.stderr).toContain("cannot list its keys, so clear needs the keys to remove");
      expect(run.stderr).toContain(imdsKey);
    }
  });

  it("prune removes expired and unreadable records and keeps good ones", async () => {
    const dir = freshDir();
    const cache = kind === "file" ? pathToFileURL(dir).href : `sqlite://${dir}.db`;
    await warm(cache);
    const store = kind === "file" ? fileCache({ dir }) : sqliteCache({ path: `${dir}.db` });
    const expired = {
      v: 1,
      accessKeyId: "ASIAEXPIREDEXAMPLE",
      secretAccessKey: "s".repeat(40),
      expiration: Date.now() - 60_000,
      cachedAt: Date.now() - 3600_000,
    };
    await store.set("expired", expired, 0);
    await store.set("garbage", "not a record", 0);
    await store.close?.();

    const run = await cli.run(["prune", "--cache", cache, "--key", "expired", "--key", "garbage"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^removed \d+ expired or unreadable entries from /);

    const after = await cli.run([
      "inspect",
      "--cache",
      cache,
      "--key",
      "expired",
      "--key",
      "garbage",
      "--json",
    ]);
    const { entries } = JSON.parse(after.stdout);
    expect(entries).toContainEqual({ key: "expired", status: "missing" });
    expect(entries).toContainEqual({ key: "garbage", status: "missing" });
    expect(entries.find((e: { key: string }) => e.key === imdsKey)).toMatchObject({ status: "ok" });
  });
});

describe("a record no key can open (encryptedCache after a key rotation)", () => {
  /** A file store config with one encryption key, as a --config file. */
  function configWith(dir: string, key: string): string {
    const file = join(root, `encrypted-${++n}.json`);
    writeFileSync(file, JSON.stringify({ driver: "file", dir, encryptionKeys: [key] }));
    return file;
  }
  const oldKey = createHash("sha256").update("credcache cli test: old key").digest("hex");
  const newKey = createHash("sha256").update("credcache cli test: new key").digest("hex");

  it("prune removes it and exits 0; inspect reports it as removed, and it is gone", async () => {
    const dir = freshDir();
    const entry = join(dir, entryFileName(imdsKey));
    const written = configWith(dir, oldKey);
    const rotated = configWith(dir, newKey);

    expect((await cli.run(["process", "--source", "imds", "--config", written])).code).toBe(0);
    const prune = await cli.run(["prune", "--config", rotated]);
    expect(prune.stderr).toBe("");
    expect(prune.code).toBe(0);
    expect(prune.stdout).toMatch(/^removed 1 expired or unreadable entry/);
    expect(existsSync(entry), "the unreadable record is gone").toBe(false);

    expect((await cli.run(["process", "--source", "imds", "--config", written])).code).toBe(0);
    const inspect = await cli.run(["inspect", "--config", rotated, "--json"]);
    expect(inspect.code).toBe(0);
    expect(JSON.parse(inspect.stdout).entries).toContainEqual({
      key: imdsKey,
      status: "invalid",
      reason: "authentication-failed, removed",
    });
    expect(existsSync(entry), "inspect said removed: the record is gone").toBe(false);
  });
});

describe("store errors", () => {
  it("inspect on an unsafe directory fails with exit 2 and one line", async () => {
    const { chmod, mkdir } = await import("node:fs/promises");
    const dir = freshDir();
    await mkdir(dir);
    await chmod(dir, 0o777);
    const run = await cli.run(["inspect", "--cache", pathToFileURL(dir).href]);
    expect(run.code).toBe(2);
    expect(lines(run.stderr)).toHaveLength(1);
    expect(run.stderr).toMatch(/^credcache inspect: /);
  });

  it("process on an unsafe directory still answers from the source, with a warning", async () => {
    const { chmod, mkdir } = await import("node:fs/promises");
    const dir = freshDir();
    await mkdir(dir);
    await chmod(dir, 0o777);
    const run = await cli.run(["process", "--source", "imds", "--cache", pathToFileURL(dir).href]);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).Version).toBe(1);
    // One cause, one line, however many store calls it failed.
    expect(lines(run.stderr)).toHaveLength(1);
    expect(run.stderr).toMatch(
      /^credcache process: warning: cache (get|set|acquireLock)(, \w+)* failed: .*writable by group and others/,
    );
  });
});
