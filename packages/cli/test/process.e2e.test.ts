import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { fromIni, fromProcess } from "@aws-sdk/credential-providers";
import { fileCache } from "@credcache/fs";
import type { ImdsEmulator } from "@credcache/imds-emulator";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { assertBuilt, BIN, CliRunner, lines, startEmulatorBehind, tempDir } from "./helpers.js";

const LIFETIME_MS = 6 * 3600_000;
/** How far the emulator's clock lags real time: lets a test make it issue near-expiry sets. */
let behindMs = 0;
let emulator: ImdsEmulator;
let cli: CliRunner;
let root: string;
let dirs = 0;

/** A cache URL nobody has used yet. */
function coldCache(kind: "file" | "sqlite"): string {
  dirs += 1;
  const path = join(root, `cache-${dirs}`);
  return kind === "file" ? pathToFileURL(path).href : `sqlite://${path}.db`;
}

const processArgs = (cache: string, ...more: string[]) => [
  "process",
  "--source",
  "imds",
  "--cache",
  cache,
  ...more,
];

/**
 * A file cache holding a set with `minutesLeft` left, stored as if fetched hours ago (not
 * just now, when the source had nothing newer), so a run may refresh it. Returns the set
 * and the entry's key.
 */
async function warmCacheNearExpiry(cache: string, minutesLeft: number) {
  behindMs = LIFETIME_MS - minutesLeft * 60_000;
  const set = emulator.rotate();
  const warm = await cli.run(processArgs(cache));
  expect(warm.code, warm.stderr).toBe(0);
  const store = fileCache({ dir: fileURLToPath(cache) });
  const [key] = (await store.keys()).filter((k) => !k.endsWith("#refresh"));
  const record = (await store.get(key!)) as { cachedAt: number };
  await store.set(key!, { ...record, cachedAt: Date.now() - 5 * 3600_000 }, 3600);
  return set;
}

beforeAll(async () => {
  assertBuilt();
  emulator = await startEmulatorBehind(LIFETIME_MS, () => behindMs);
  cli = new CliRunner({ AWS_EC2_METADATA_SERVICE_ENDPOINT: emulator.url });
  root = await tempDir("process");
});

afterEach(() => {
  emulator.setFaults(undefined);
  vi.unstubAllEnvs();
});

afterAll(async () => {
  // Every run in this file, failures included: no secret the emulator ever issued on stderr.
  const stderr = cli.stderrLog.join("\n");
  const secrets = emulator.secretsIssued();
  expect(secrets.length).toBeGreaterThan(0);
  for (const secret of secrets) expect(stderr.includes(secret)).toBe(false);
  await emulator.close();
  await rm(root, { recursive: true, force: true });
});

describe("credcache process", () => {
  it.each(["file", "sqlite"] as const)(
    "20 concurrent runs on a cold %s cache make one credential fetch and all print the same credentials",
    async (kind) => {
      const cache = coldCache(kind);
      emulator.resetStats();
      const runs = await Promise.all(Array.from({ length: 20 }, () => cli.run(processArgs(cache))));
      for (const run of runs) {
        expect(run.code, run.stderr).toBe(0);
        // A heavily loaded host may print warnings (a slow lock); never anything else.
        for (const line of lines(run.stderr)) expect(line).toMatch(/^credcache process: warning: /);
      }
      expect(new Set(runs.map((run) => run.stdout)).size).toBe(1);
      expect(emulator.stats.credentialFetches).toBe(1);

      const output = JSON.parse(runs[0]!.stdout);
      const current = emulator.currentCredentials();
      expect(output).toMatchObject({ Version: 1, AccessKeyId: current.accessKeyId });
      expect(output.SecretAccessKey).toMatch(/^\S{40}$/);
      expect(output.SessionToken.length).toBeGreaterThan(100);
      expect(output.Expiration).toBe(current.expiration.toISOString());
      if (output.AccountId !== undefined) expect(output.AccountId).toBe("123456789012");
      expect(Object.keys(output).slice(0, 5)).toEqual([
        "Version",
        "AccessKeyId",
        "SecretAccessKey",
        "SessionToken",
        "Expiration",
      ]);
    },
  );

  it("serves a warm cache without asking the source", async () => {
    const cache = coldCache("file");
    const first = await cli.run(processArgs(cache));
    expect(first.code).toBe(0);
    emulator.resetStats();
    const second = await cli.run(processArgs(cache));
    expect(second).toMatchObject({ code: 0, stdout: first.stdout, stderr: "" });
    expect(emulator.stats.requests.total).toBe(0);
  });

  it("answers the JS SDK's fromProcess and fromIni through credential_process in ~/.aws/config", async () => {
    const dir = join(root, "aws-config");
    await mkdir(dir, { recursive: true });
    const cache = coldCache("file");
    const command = `"${process.execPath}" "${BIN}" process --source imds --cache ${cache}`;
    await writeFile(
      join(dir, "config"),
      `[profile app]\nregion = us-east-1\ncredential_process = ${command}\n`,
    );
    await writeFile(join(dir, "credentials"), "");
    vi.stubEnv("AWS_CONFIG_FILE", join(dir, "config"));
    vi.stubEnv("AWS_SHARED_CREDENTIALS_FILE", join(dir, "credentials"));
    vi.stubEnv("AWS_PROFILE", "app");
    vi.stubEnv("AWS_EC2_METADATA_SERVICE_ENDPOINT", emulator.url);
    emulator.resetStats();

    const viaProcess = await fromProcess({ ignoreCache: true })();
    const viaIni = await fromIni({ ignoreCache: true })();

    const current = emulator.currentCredentials();
    expect(viaProcess.accessKeyId).toBe(current.accessKeyId);
    expect(viaProcess.expiration?.getTime()).toBe(current.expiration.getTime());
    expect(viaIni.accessKeyId).toBe(current.accessKeyId);
    expect(viaIni.sessionToken).toBe(viaProcess.sessionToken);
    // Two SDK resolutions, two credcache processes, one fetch.
    expect(emulator.stats.credentialFetches).toBe(1);
  });

  it("never prints credentials the SDK would treat as expired: fails, then serves the next rotation", async () => {
    const cache = coldCache("file");
    try {
      behindMs = LIFETIME_MS - 4 * 60_000;
      emulator.rotate(); // expires in 4 min of real time
      const short = await cli.run(processArgs(cache));
      expect(short.code).toBe(1);
      expect(short.stdout).toBe("");
      expect(lines(short.stderr)).toHaveLength(1);
      expect(short.stderr).toMatch(
        /^credcache process: imds \(.*\) has only credentials that expire in 3m \d+s/,
      );
      expect(short.stderr).toContain("less than 5 min left");

      behindMs = 0;
      const fresh = emulator.rotate();
      const next = await cli.run(processArgs(cache));
      expect(next.code, next.stderr).toBe(0);
      const output = JSON.parse(next.stdout);
      expect(output.AccessKeyId).toBe(fresh.accessKeyId);
      expect(Date.parse(output.Expiration) - Date.now()).toBeGreaterThan(5 * 3600_000);
    } finally {
      behindMs = 0;
      emulator.rotate();
    }
  });

  it("honours --min-validity: a set with 8 min left is refused at 600 s and accepted at 360 s", async () => {
    const cache = coldCache("file");
    try {
      behindMs = LIFETIME_MS - 8 * 60_000;
      const set = emulator.rotate();
      const strict = await cli.run(processArgs(cache, "--min-validity", "600"));
      expect(strict.code).toBe(1);
      expect(strict.stderr).toMatch(/expire in 7m \d+s/);
      const normal = await cli.run(processArgs(cache));
      expect(normal.code, normal.stderr).toBe(0);
      expect(JSON.parse(normal.stdout).AccessKeyId).toBe(set.accessKeyId);
    } finally {
      behindMs = 0;
      emulator.rotate();
    }
  });

  it("IMDS hangs while the cached set has 10 min left: every run prints it, and one attempt in all reaches IMDS", async () => {
    const cache = coldCache("file");
    try {
      // Expires in 10 min of real time: inside every window.
      const set = await warmCacheNearExpiry(cache, 10);
      emulator.setFaults({ any: { hang: true } });
      emulator.resetStats();
      const runs = await Promise.all(
        Array.from({ length: 6 }, () => cli.run(processArgs(cache, "--timeout", "300", "--retries", "0"))),
      );
      for (const run of runs) {
        expect(run.code, run.stderr).toBe(0);
        expect(JSON.parse(run.stdout).AccessKeyId).toBe(set.accessKeyId);
      }
      // Before: each of the 6 runs made its own attempt behind the lock. One attempt is one
      // token PUT (the SDK then falls back to IMDSv1 once, so two hung requests).
      expect(emulator.stats.requests.token, "one attempt for the host, not one per run").toBe(1);
      // The failure is shared: a later run does not ask again within the backoff.
      const later = await cli.run(processArgs(cache, "--timeout", "300", "--retries", "0"));
      expect(later.code).toBe(0);
      expect(emulator.stats.requests.token).toBe(1);
    } finally {
      emulator.setFaults(undefined);
      behindMs = 0;
      emulator.rotate();
    }
  });

  it("source down, cached set inside the refresh window: prints the set and one warning line about the failed refresh", async () => {
    const cache = coldCache("file");
    try {
      // 15 min left: inside process's 20 min window, above its 6 min floor.
      const set = await warmCacheNearExpiry(cache, 15);
      emulator.setFaults({ any: { status: 500 } });
      emulator.resetStats();
      const run = await cli.run(processArgs(cache, "--retries", "0"));
      expect(run.code, run.stderr).toBe(0);
      expect(JSON.parse(run.stdout).AccessKeyId).toBe(set.accessKeyId);
      expect(emulator.stats.requests.total, "the refresh behind asked IMDS").toBeGreaterThan(0);
      // Before: nothing on stderr (the refresh behind ended in close(), after the warnings).
      expect(lines(run.stderr)).toHaveLength(1);
      expect(run.stderr).toMatch(/^credcache process: warning: fetching failed \(.+\); next attempt after /);
    } finally {
      emulator.setFaults(undefined);
      behindMs = 0;
      emulator.rotate();
    }
  });

  it("prints the error text of a planted refresh state with its control characters escaped", async () => {
    const cache = coldCache("file");
    const warm = await cli.run(processArgs(cache));
    expect(warm.code, warm.stderr).toBe(0);
    const store = fileCache({ dir: fileURLToPath(cache) });
    const [key] = (await store.keys()).filter((k) => !k.endsWith("#refresh"));
    await store.remove(key!);
    // What another tenant of a shared store can write: a plausible backoff, a hostile message.
    await store.set(
      `${key}#refresh`,
      {
        v: 1,
        kind: "refresh-state",
        failures: 3,
        nextAttemptAt: Date.now() + 50_000,
        error: { name: "Error", message: "\u001b[2J\u001b]0;pwned\u0007 \u009b31m" },
      },
      120,
    );
    const run = await cli.run(processArgs(cache));
    // biome-ignore lint/suspicious/noControlCharactersInRegex: what must never be printed raw.
    const raw = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;
    expect(run.stderr).not.toMatch(raw);
    // Before: printed raw (C1 0x9b included) in the one-line failure.
    if (run.stderr.includes("pwned")) expect(run.stderr).toContain("\\x1b[2J\\x1b]0;pwned\\x07 \\x9b31m");
  });

  it("fails with one line and exit 1 when the source answers 500 and the cache is cold", async () => {
    emulator.setFaults({ any: { status: 500 } });
    const run = await cli.run(processArgs(coldCache("file")));
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(lines(run.stderr)).toHaveLength(1);
    expect(run.stderr).toMatch(
      /^credcache process: could not get credentials from imds \(http:\/\/127\.0\.0\.1:\d+\): /,
    );
  });

  it("a malformed credentials document is a one-line failure with no piece of the document", async () => {
    emulator.setFaults({ credentials: { malformed: true } });
    const run = await cli.run(processArgs(coldCache("file")));
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(lines(run.stderr)).toHaveLength(1);
    expect(run.stderr).not.toContain("AccessKeyId");
  });

  it("an expired set from IMDS: the SDK's static-stability notice becomes one warning line, or the run fails cleanly", async () => {
    emulator.setFaults({ credentials: { expired: true } });
    const run = await cli.run(processArgs(coldCache("file")));
    // The SDK extends expired IMDS credentials by 5-10 min (random); under 6 min is refused.
    if (run.code === 0) {
      expect(JSON.parse(run.stdout).Version).toBe(1);
      expect(lines(run.stderr), "one warning line for the extended set").toHaveLength(1);
      expect(run.stderr).toMatch(/^credcache process: warning: .*extended to .*static stability/);
    } else {
      expect(run.code).toBe(1);
      expect(run.stdout).toBe("");
      expect(lines(run.stderr)).toHaveLength(1);
    }
  });

  it("keeps serving cached credentials while the source is down", async () => {
    const cache = coldCache("sqlite");
    const warm = await cli.run(processArgs(cache));
    expect(warm.code).toBe(0);
    emulator.setFaults({ any: { status: 500 } });
    const run = await cli.run(processArgs(cache));
    expect(run).toMatchObject({ code: 0, stdout: warm.stdout, stderr: "" });
  });

  it("passes --timeout and --retries to the SDK: a hung IMDS fails within the timeout", async () => {
    emulator.setFaults({ any: { hang: true } });
    const run = await cli.run(processArgs(coldCache("file"), "--timeout", "200", "--retries", "0"));
    expect(run.code).toBe(1);
    expect(lines(run.stderr)).toHaveLength(1);
  });
});

describe("credcache usage errors (exit 2, one line, says what to fix)", () => {
  it.each([
    [
      ["process", "--source", "imds", "--cache", "bogus://x"],
      /Unknown cache URL scheme "bogus:".*file:\/\/\/absolute\/dir/,
    ],
    [["process", "--source", "imds", "--cache", "file://host/dir"], /three slashes and an absolute path/],
    [["process", "--source", "imds", "--cache", "sqlite:///var/"], /no database file name/],
    [
      ["process", "--source", "ec2", "--cache", "memory:"],
      /unknown source "ec2": use imds, container, profile:NAME, assume-role:ARN, web-identity or chain/,
    ],
    [["process", "--source", "assume-role:nope", "--cache", "memory:"], /expected a role ARN/],
    [["process", "--source", "imds"], /no cache configured: pass --cache URL/],
    [
      ["process", "--source", "imds", "--cache", "memory:", "--retries", "-1"],
      /--retries must be a whole number/,
    ],
    [
      ["process", "--source", "imds", "--cache", "memory:", "--frobnicate"],
      /unknown option --frobnicate; run "credcache process --help"/,
    ],
    [
      ["process", "--source", "container", "--cache", "memory:"],
      /needs AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/,
    ],
    [
      ["process", "--source", "imds", "--config", "/nonexistent/credcache.json"],
      /cannot read config file .*: no such file/,
    ],
    [["frobnicate"], /unknown command "frobnicate"/],
    [["clear", "--cache", "file:///tmp/x", "--store", "a"], /--store picks a named store from a config file/],
  ])("%j", async (args, message) => {
    const run = await cli.run(args);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe("");
    expect(lines(run.stderr)).toHaveLength(1);
    expect(run.stderr).toMatch(message);
  });

  it("bare credcache prints the overview on stderr with exit 2", async () => {
    const run = await cli.run([]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("Usage: credcache <command>");
  });

  it.each(["process", "inspect", "clear", "prune"])(
    "credcache %s --help shows usage and examples",
    async (command) => {
      for (const flag of ["--help", "-h"]) {
        const run = await cli.run([command, flag]);
        expect(run).toMatchObject({ code: 0, stderr: "" });
        expect(run.stdout).toContain(`Usage: credcache ${command}`);
        expect(run.stdout).toContain("Examples:");
        expect(run.stdout).toContain("Exit codes:");
      }
    },
  );

  it("credcache --help and --version", async () => {
    const help = await cli.run(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("credential_process = credcache process --source imds");
    const version = await cli.run(["--version"]);
    expect(version).toMatchObject({ code: 0, stdout: "0.1.0\n" });
  });
});
