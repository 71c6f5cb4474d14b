import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, realpath } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

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
