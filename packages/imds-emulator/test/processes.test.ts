/**
 * Real child processes: the `imds-emulator` bin (built dist), and many SDK processes against one
 * emulator, as the demo and the benchmarks use it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { type ImdsEmulator, startImdsEmulator } from "../src/index.js";
import { getToken, http, sdkEnv } from "./helpers.js";

const packageDir = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = join(packageDir, "dist", "bin.js");

const children: ChildProcess[] = [];
let imds: ImdsEmulator | undefined;
afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill("SIGKILL");
  await imds?.close();
  imds = undefined;
});

function run(args: string[], env: NodeJS.ProcessEnv = process.env) {
  const child = spawn(process.execPath, args, { cwd: packageDir, env, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  const exited = new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.once("exit", (code) => resolve({ code, stderr })),
  );
  return { child, exited, lines: createInterface({ input: child.stdout! })[Symbol.asyncIterator]() };
}

describe("imds-emulator bin", () => {
  beforeAll(() => {
    if (!existsSync(bin))
      throw new Error(`${bin} is missing: run \`npx tsup\` in packages/imds-emulator first`);
  });

  it("prints the URL and the export line, serves with the given options, and stops on SIGTERM", async () => {
    const { child, exited, lines } = run([
      bin,
      "--port",
      "0",
      "--imdsv2-only",
      "--lifetime",
      "10m",
      "--lead",
      "1m",
      "--role",
      "bin-role",
    ]);
    const first = (await lines.next()).value as string;
    const second = (await lines.next()).value as string;
    const url = /^imds-emulator listening on (http:\/\/127\.0\.0\.1:\d+)$/.exec(first)?.[1];
    expect(url).toBeDefined();
    expect(second).toBe(`export AWS_EC2_METADATA_SERVICE_ENDPOINT=${url}`);

    const path = "/latest/meta-data/iam/security-credentials/";
    expect((await http(`${url}${path}`)).status).toBe(401);
    const headers = { "x-aws-ec2-metadata-token": await getToken(url!) };
    expect((await http(`${url}${path}`, { headers })).body).toBe("bin-role");
    const doc = JSON.parse((await http(`${url}${path}bin-role`, { headers })).body);
    expect(Date.parse(doc.Expiration) - Date.parse(doc.LastUpdated)).toBe(10 * 60_000);

    child.kill("SIGTERM");
    expect((await exited).code).toBe(0);
  });

  it("rejects a duration without a unit with a clear message and exit code 2", async () => {
    const { exited } = run([bin, "--port", "0", "--lifetime", "6"]);
    const { code, stderr } = await exited;
    expect(code).toBe(2);
    expect(stderr).toContain("--lifetime takes a duration with a unit");
  });
});

describe("many processes against one emulator", () => {
  it("serves 8 concurrent SDK processes the same credentials, each through IMDSv2", async () => {
    imds = await startImdsEmulator({ imdsv2Only: true });
    const script = `
      import { fromInstanceMetadata } from "@aws-sdk/credential-providers";
      const creds = await fromInstanceMetadata({ timeout: 5000 })();
      console.log(creds.accessKeyId);
    `;
    const env = sdkEnv(imds.url);
    const runs = Array.from({ length: 8 }, () => run(["--input-type=module", "-e", script], env));
    const results = await Promise.all(
      runs.map(async ({ exited, lines }) => ({ key: (await lines.next()).value, ...(await exited) })),
    );
    for (const r of results)
      expect(r, r.stderr).toMatchObject({ code: 0, key: imds.currentCredentials().accessKeyId });
    expect(imds.stats).toMatchObject({
      tokensIssued: 8,
      credentialFetches: 8,
      credentialSets: 1,
      reads: { withToken: 16, withoutToken: 0 },
    });
  });
});
