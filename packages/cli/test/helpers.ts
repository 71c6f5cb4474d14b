import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, realpath } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type ImdsEmulator, startImdsEmulator } from "@credcache/imds-emulator";

/** The built command. Children run it with plain node, as an SDK's credential_process does. */
export const BIN = fileURLToPath(new URL("../dist/bin.cjs", import.meta.url));

export function assertBuilt(): void {
  if (!existsSync(BIN)) {
    throw new Error(`${BIN} is missing: build the CLI first (cd packages/cli && npx tsup)`);
  }
}

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Variables that would make a child read some other cache, profile or credentials. */
const SCRUBBED = /^(CREDCACHE_|AWS_)/;

/**
 * Runs `node dist/bin.cjs ...` in real child processes and keeps every stderr, so a test
 * file can check at the end that no secret was ever written there.
 */
export class CliRunner {
  readonly stderrLog: string[] = [];
  constructor(private readonly env: Record<string, string>) {}

  run(args: readonly string[], extraEnv: Record<string, string> = {}): Promise<CliRun> {
    const env: Record<string, string> = {};
    for (const [name, value] of Object.entries(process.env)) {
      if (value !== undefined && !SCRUBBED.test(name)) env[name] = value;
    }
    Object.assign(env, this.env, extraEnv);
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
        stdout += chunk;
      });
      child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
        stderr += chunk;
      });
      child.on("error", reject);
      child.on("close", (code) => {
        this.stderrLog.push(stderr);
        resolve({ code, stdout, stderr });
      });
    });
  }
}

/** A fresh private temp dir (0700, as mkdtemp makes it), with symlinks resolved. */
export async function tempDir(prefix: string): Promise<string> {
  return realpath(await mkdtemp(join(tmpdir(), `credcache-cli-${prefix}-`)));
}

export function lines(text: string): string[] {
  return text.split("\n").filter((line) => line !== "");
}

/**
 * Keeps a long-running child's stderr and tracks it in `running` until it closes; its
 * stderr then goes to `stderrLog`, for the file's final check that no secret was written.
 */
export function watchChild(
  child: ChildProcess,
  running: Set<ChildProcess>,
  stderrLog: string[],
): { stderr: () => string; exited: Promise<number | null> } {
  running.add(child);
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) =>
    child.on("close", (code) => {
      running.delete(child);
      stderrLog.push(stderr);
      resolve(code);
    }),
  );
  return { stderr: () => stderr, exited };
}

export interface Reply {
  status: number;
  body: string;
}

/** A raw GET with exactly the headers given (Host included), on a connection of its own. */
export function get(url: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

/**
 * An IMDS emulator on a free port that issues sets of `lifetimeMs`, on a clock `behindMs()`
 * behind the real one: a test moves it back to make the sets the CLI reads as old as it needs.
 */
export function startEmulatorBehind(lifetimeMs: number, behindMs: () => number): Promise<ImdsEmulator> {
  return startImdsEmulator({ port: 0, lifetimeMs, clock: { now: () => Date.now() - behindMs() } });
}
