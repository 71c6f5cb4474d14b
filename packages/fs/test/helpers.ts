import { type ChildProcess, type SpawnOptions, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, isAbsolute, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type AwsCredentialIdentity,
  type CacheEvent,
  CacheUnavailableError,
  type CredentialCache,
  fromCache,
} from "@credcache/core";
import { afterEach, expect } from "vitest";
import { fileCache } from "../src/index.js";

export const NOBODY = 65534;
export const HOUR_MS = 60 * 60_000;
export const here = dirname(fileURLToPath(import.meta.url));
/** A fixture script by name; an absolute path (a bundle made for another user) as is. */
export const fixture = (name: string) => (isAbsolute(name) ? name : join(here, "fixtures", name));

const made: string[] = [];
afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A fresh real temp dir, removed after the test. */
export function tempDir(prefix = "credcache-fs-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** The entry file of `key`, as documented: sha256(key) in hex + ".json". */
export function entryFile(dir: string, key: string): string {
  return join(dir, `${createHash("sha256").update(key).digest("hex")}.json`);
}

export function leaseFile(dir: string, key: string): string {
  return join(dir, `${createHash("sha256").update(key).digest("hex")}.lease`);
}

/** A manual clock. */
export function manualClock(start = Date.now()) {
  let t = start;
  return {
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
  };
}

export function mode(stats: { mode: number }): string {
  return (stats.mode & 0o7777).toString(8);
}

/** Runs `fn` with the given umask and restores the old one. */
export async function withUmask<T>(mask: number, fn: () => Promise<T>): Promise<T> {
  const old = process.umask(mask);
  try {
    return await fn();
  } finally {
    process.umask(old);
  }
}

/** A credential source that counts its calls. */
export function scriptedSource() {
  const state = { calls: 0, last: undefined as AwsCredentialIdentity | undefined };
  const provider = async (): Promise<AwsCredentialIdentity> => {
    state.calls += 1;
    state.last = {
      accessKeyId: `ASIAFSTEST${String(state.calls).padStart(6, "0")}`,
      secretAccessKey: `fs-secret-${randomBytes(12).toString("hex")}`,
      sessionToken: `fs-token-${randomBytes(16).toString("hex")}`,
      expiration: new Date(Date.now() + HOUR_MS),
    };
    return state.last;
  };
  return { provider, state };
}

/** Resolves credentials once through `fromCache` over `store`, recording events. */
export async function resolveThrough(store: CredentialCache, key = "creds") {
  const source = scriptedSource();
  const events: CacheEvent[] = [];
  const provider = fromCache({
    provider: source.provider,
    cache: store,
    key,
    onEvent: (event) => events.push(event),
    proactiveRefresh: false,
    cacheTimeoutMs: 10_000,
  });
  try {
    const identity = await provider();
    return { identity, events, source };
  } finally {
    await provider.close();
  }
}

export function cacheErrors(events: CacheEvent[]): Array<Extract<CacheEvent, { type: "cache-error" }>> {
  return events.flatMap((event) => (event.type === "cache-error" ? [event] : []));
}

/** The built package: child processes run plain node against dist. */
export function assertBuilt(): void {
  const dist = join(here, "..", "dist", "index.js");
  if (!existsSync(dist)) throw new Error(`build @credcache/fs first (cd packages/fs && npx tsup): ${dist}`);
}

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a fixture script under plain node and collects its output. */
export function runChild(script: string, args: string[], options: SpawnOptions = {}): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fixture(script), ...args], { ...options, stdio: "pipe" });
    collect(child).then(resolve, reject);
  });
}

export function startChild(script: string, args: string[], options: SpawnOptions = {}): ChildProcess {
  return spawn(process.execPath, [fixture(script), ...args], { ...options, stdio: "pipe" });
}

export function collect(child: ChildProcess): Promise<ChildResult> {
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk) => {
    stdout += chunk;
  });
  child.stderr?.on("data", (chunk) => {
    stderr += chunk;
  });
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Resolves with the first complete stdout line of `child` that starts with `prefix`. */
export function lineFrom(child: ChildProcess, prefix: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffer = "";
    let stderr = "";
    child.stderr?.on("data", (chunk) => {
      stderr += chunk;
    });
    const onData = (chunk: Buffer) => {
      buffer += chunk;
      // Complete lines only: a chunk may end mid-line.
      const line = buffer
        .split("\n")
        .slice(0, -1)
        .find((l) => l.startsWith(prefix));
      if (line !== undefined) {
        child.stdout?.off("data", onData);
        resolve(line);
      }
    };
    child.stdout?.on("data", onData);
    child.on("close", (code) => reject(new Error(`child exited (${code}) before "${prefix}": ${stderr}`)));
  });
}

/**
 * The cache must refuse `dir` on every call with a CacheUnavailableError naming the path
 * and matching every one of `reasons`, and `fromCache` must still hand out the source's
 * credentials, reporting a cache-error.
 */
export async function expectRefused(dir: string, ...reasons: RegExp[]) {
  const store = fileCache({ dir });
  const matches = (message: string) => {
    expect(message).toContain(`"${dir}"`);
    for (const reason of reasons) expect(message).toMatch(reason);
  };
  for (const call of [
    () => store.get("creds"),
    () => store.set("creds", { x: 1 }),
    () => store.remove("creds"),
    () => store.acquireLock("creds", { ttlMs: 1000 }),
    () => store.prune(),
    () => store.keys(),
  ]) {
    const error = await call().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CacheUnavailableError);
    matches((error as Error).message);
  }
  const { identity, events, source } = await resolveThrough(store);
  expect(source.state.calls).toBe(1);
  expect(identity.accessKeyId).toBe(source.state.last?.accessKeyId);
  const errors = cacheErrors(events);
  expect(errors.map((e) => e.operation)).toEqual(expect.arrayContaining(["get", "set"]));
  for (const event of errors) {
    expect(event.error.code).toBe("ERR_CREDCACHE_UNAVAILABLE");
    matches(event.error.message);
  }
}
