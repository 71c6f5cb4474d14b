import { type ChildProcess, spawn } from "node:child_process";
import { stat, writeFile } from "node:fs/promises";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { type ImdsEmulator, startImdsEmulator } from "@credcache/imds-emulator";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, BIN, CliRunner, get, tempDir, watchChild } from "./helpers.js";

// `credcache serve --ecs-agent` on a loopback port, asked with the Host header an SDK sends
// to 169.254.170.2 (what a DNAT rule delivers). The real address, in a private network
// namespace, with clients in PHP, Ruby, Python and Go: interop/clients.test.ts.

let emulator: ImdsEmulator;
let root: string;
let cli: CliRunner;
let dirs = 0;
const running = new Set<ChildProcess>();
const stderrLog: string[] = [];
const relativeUris: string[] = [];

const ENV_LINE = /^AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=(\/v2\/credentials\/[0-9a-f]{32})\n$/;

async function freshDir(): Promise<string> {
  dirs += 1;
  const dir = join(root, `ecs-${dirs}`);
  await import("node:fs/promises").then((fs) => fs.mkdir(dir, { mode: 0o700 }));
  return dir;
}

/** `--print-env NAME`: the relative URI, checked for shape, remembered for the leak scan. */
async function printEnv(args: string[], name = "default"): Promise<string> {
  const run = await cli.run(["serve", "--ecs-agent", "--cache", "memory:", ...args, "--print-env", name]);
  expect(run.stderr).toBe("");
  expect(run.code).toBe(0);
  const uri = ENV_LINE.exec(run.stdout)?.[1];
  expect(uri, run.stdout).toBeDefined();
  relativeUris.push(uri!);
  return uri!;
}

/** Serve arguments for a credentials file with "web" and "reports", "default" naming "web". */
async function twoCredentials(): Promise<string[]> {
  const dir = await freshDir();
  const file = join(dir, "serve.json");
  const credentials = { web: { source: "imds" }, reports: { source: "imds" } };
  await writeFile(file, JSON.stringify({ default: "web", credentials }));
  return ["--credentials", file, "--token-file", join(dir, "token")];
}

/** A `credcache serve` run that must stop before serving, with a fresh token file. */
async function serveOnce(args: string[], env: Record<string, string> = {}) {
  return cli.run(
    ["serve", "--cache", "memory:", "--token-file", join(await freshDir(), "token"), ...args],
    env,
  );
}

interface Serve {
  port: number;
  stderr(): string;
  stop(): Promise<number | null>;
}

async function startServe(args: string[]): Promise<Serve> {
  const child = spawn(
    process.execPath,
    [BIN, "serve", "--ecs-agent", "--cache", "memory:", "--listen", "127.0.0.1:0", ...args],
    { env: { PATH: process.env.PATH ?? "", AWS_EC2_METADATA_SERVICE_ENDPOINT: emulator.url } },
  );
  const { stderr, exited } = watchChild(child, running, stderrLog);
  const port = await new Promise<number>((resolve, reject) => {
    const poll = setInterval(() => {
      const ready = /ready on http:\/\/127\.0\.0\.1:(\d+) as the ECS agent/.exec(stderr());
      if (ready) {
        clearInterval(poll);
        resolve(Number(ready[1]));
      }
    }, 20);
    exited.then((code) => {
      clearInterval(poll);
      reject(new Error(`serve exited with ${code} before it was ready: ${stderr()}`));
    });
  });
  return {
    port,
    stderr,
    stop: () => {
      child.kill("SIGTERM");
      return exited;
    },
  };
}

/** A raw GET with exactly these headers (Host included), as an SDK sends it to 169.254.170.2. */
/** A GET to the server as a container would send it (Host 169.254.170.2 unless told otherwise). */
function getFrom(
  port: number,
  path: string,
  headers: Record<string, string> = { host: "169.254.170.2" },
): Promise<{ status: number; body: string }> {
  return get(`http://127.0.0.1:${port}${path}`, headers);
}

function metric(text: string, line: string): number {
  const found = text.split("\n").find((l) => l.startsWith(`${line} `));
  return found === undefined ? 0 : Number(found.slice(line.length + 1));
}

beforeAll(async () => {
  assertBuilt();
  emulator = await startImdsEmulator({ port: 0 });
  root = await tempDir("ecs");
  cli = new CliRunner({ AWS_EC2_METADATA_SERVICE_ENDPOINT: emulator.url });
});

afterEach(() => {
  for (const child of running) child.kill("SIGKILL");
});

afterAll(async () => {
  // The relative URI is the capability: like the secrets, it never reaches a log line.
  const stderr = [...stderrLog, ...cli.stderrLog].join("\n");
  const secrets = emulator.secretsIssued();
  expect(secrets.length).toBeGreaterThan(0);
  expect(relativeUris.length).toBeGreaterThan(0);
  for (const secret of [...secrets, ...relativeUris]) expect(stderr.includes(secret)).toBe(false);
  for (const uri of relativeUris) expect(stderr.includes(uri.slice("/v2/credentials/".length))).toBe(false);
  await emulator.close();
});

describe("serve --ecs-agent --print-env", () => {
  it("creates the secret file 600 and prints the same EnvironmentFile line on every run", async () => {
    const tokenFile = join(await freshDir(), "token");
    const first = await printEnv(["--source", "imds", "--token-file", tokenFile]);
    expect((await stat(tokenFile)).mode & 0o777).toBe(0o600);
    expect(await printEnv(["--source", "imds", "--token-file", tokenFile])).toBe(first);
    const other = join(await freshDir(), "token");
    expect(await printEnv(["--source", "imds", "--token-file", other])).not.toBe(first);
  });

  it("gives each credential of a credentials file its own id, the alias too", async () => {
    const args = await twoCredentials();
    const ids = [
      await printEnv(args, "web"),
      await printEnv(args, "reports"),
      await printEnv(args, "default"),
    ];
    expect(new Set(ids).size).toBe(3);
    const unknown = await cli.run([
      "serve",
      "--ecs-agent",
      "--cache",
      "memory:",
      ...args,
      "--print-env",
      "nope",
    ]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("no such credential (web, reports, default)");
  });

  it("is refused without --ecs-agent", async () => {
    const run = await serveOnce(["--source", "imds", "--print-env", "default"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("use it with --ecs-agent");
  });
});

describe("serve --ecs-agent", () => {
  it("serves the exact set at the relative URI with no token, and 404s every other path, counted", async () => {
    const tokenFile = join(await freshDir(), "token");
    const uri = await printEnv(["--source", "imds", "--token-file", tokenFile]);
    const server = await startServe(["--source", "imds", "--token-file", tokenFile]);

    for (const host of ["169.254.170.2", "169.254.170.2:80", `127.0.0.1:${server.port}`]) {
      const reply = await getFrom(server.port, uri, { host });
      expect(reply.status, host).toBe(200);
      const body = JSON.parse(reply.body);
      expect(body.AccessKeyId).toBe(emulator.currentCredentials().accessKeyId);
      expect(emulator.secretsIssued()).toContain(body.SecretAccessKey);
      expect(emulator.secretsIssued()).toContain(body.Token);
      expect(new Date(body.Expiration).getTime()).toBe(emulator.currentCredentials().expiration.getTime());
    }

    const id = uri.slice("/v2/credentials/".length);
    const { readFile } = await import("node:fs/promises");
    const token = await readFile(tokenFile, "utf8");
    const misses = [
      "/v2/credentials/00000000000000000000000000000000",
      uri.slice(0, -1),
      `${uri}0`,
      `${uri}/`,
      `/v2/credentials/${id.toUpperCase()}`,
      `/v1/credentials/${id}`,
      `/creds/default`,
      `/v2/credentials/${token}`,
      "/",
    ];
    for (const path of misses) expect((await getFrom(server.port, path)).status, path).toBe(404);
    // The token of the token mode opens nothing here.
    expect(
      (await getFrom(server.port, "/creds/default", { host: "169.254.170.2", authorization: token })).status,
    ).toBe(404);

    // The token mode's rules apply: a proxied request or a foreign Host gets nothing.
    expect(
      (await getFrom(server.port, uri, { host: "169.254.170.2", "x-forwarded-for": "10.0.0.9" })).status,
    ).toBe(403);
    expect((await getFrom(server.port, uri, { host: "169.254.170.2:8080" })).status).toBe(403);
    expect((await getFrom(server.port, uri, { host: "evil.example" })).status).toBe(403);

    const metrics = (await getFrom(server.port, "/metrics")).body;
    expect(metric(metrics, 'credcache_serve_responses_total{credential="unknown",status="404"}')).toBe(
      misses.length + 1,
    );
    expect(metric(metrics, 'credcache_serve_responses_total{credential="default",status="200"}')).toBe(3);
    expect(metric(metrics, 'credcache_serve_refused_total{reason="host"}')).toBe(2);
    expect(metric(metrics, 'credcache_serve_refused_total{reason="forwarded"}')).toBe(1);
    expect(metric(metrics, 'credcache_serve_source_fetches_total{credential="default"}')).toBe(1);
    expect(await server.stop()).toBe(0);
  });

  it("serves each credential only at its own id", async () => {
    const args = await twoCredentials();
    const server = await startServe(args);
    for (const name of ["web", "reports", "default"]) {
      expect((await getFrom(server.port, await printEnv(args, name))).status, name).toBe(200);
    }
    const metrics = (await getFrom(server.port, "/metrics")).body;
    expect(metric(metrics, 'credcache_serve_responses_total{credential="reports",status="200"}')).toBe(1);
    expect(metric(metrics, 'credcache_serve_responses_total{credential="default",status="200"}')).toBe(1);
    expect(await server.stop()).toBe(0);
  });

  it("refuses 169.254.170.2 when no interface holds it, and says how to add it", async () => {
    const held = Object.values(networkInterfaces()).some((list) =>
      (list ?? []).some((a) => a.address === "169.254.170.2"),
    );
    if (held) return; // this host has it already; the netns test covers the address itself
    const run = await serveOnce(["--ecs-agent", "--source", "imds"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("ip addr add 169.254.170.2/32 dev lo");
  });

  it("refuses to be its own source: --source container with only the relative URI", async () => {
    const run = await serveOnce(["--ecs-agent", "--listen", "127.0.0.1:0", "--source", "container"], {
      AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: "/v2/credentials/x",
    });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("which this server answers in --ecs-agent mode");
  });
});
