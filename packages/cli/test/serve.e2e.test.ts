import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { chmod, chown, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer as createHttpServer } from "node:http";
import { connect, createServer, type Socket } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { fromContainerMetadata, fromHttp, fromInstanceMetadata } from "@aws-sdk/credential-providers";
import type { ImdsEmulator } from "@credcache/imds-emulator";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { describeAsOtherUser, itAsOtherUser, reachableBundle } from "../../../test/support/otherUser.mjs";
import {
  assertBuilt,
  BIN,
  CliRunner,
  get,
  type Reply,
  startEmulatorBehind,
  tempDir,
  watchChild,
} from "./helpers.js";

const LIFETIME_MS = 6 * 3600_000;
const CLI_DIR = fileURLToPath(new URL("..", import.meta.url));
/** How far the emulator's clock lags real time: lets a test make it issue near-expiry sets. */
let behindMs = 0;
let emulator: ImdsEmulator;
let root: string;
let cli: CliRunner;
let dirs = 0;
const stderrLog: string[] = [];
const tokens: string[] = [];
const running = new Set<ChildProcess>();
/** Extra emulators, closed (and scanned for leaks) at the end. */
const onClose: ImdsEmulator[] = [];

function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !/^(CREDCACHE_|AWS_|NOTIFY_SOCKET$)/.test(name)) env[name] = value;
  }
  return { ...env, AWS_EC2_METADATA_SERVICE_ENDPOINT: emulator.url, ...extra };
}

interface Serve {
  child: ChildProcess;
  url: string;
  port: number;
  tokenFile: string;
  token: string;
  stderr(): string;
  exited: Promise<number | null>;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

/** A fresh directory (0700) for a cache and a token. */
async function freshDir(): Promise<string> {
  dirs += 1;
  const dir = join(root, `serve-${dirs}`);
  await import("node:fs/promises").then((fs) => fs.mkdir(dir, { mode: 0o700 }));
  return dir;
}

/** A port that was free a moment ago, for tests that must know it before the server says so. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

interface ServeChild {
  child: ChildProcess;
  stderr(): string;
  exited: Promise<number | null>;
}

/** Spawns `node dist/bin.cjs serve ARGS...`; its stderr is kept and scanned for secrets at the end. */
function spawnServe(args: string[], env: Record<string, string> = {}, wrap: string[] = []): ServeChild {
  const [command, ...prefix] = [...wrap, process.execPath];
  const child = spawn(command!, [...prefix, BIN, "serve", ...args], {
    env: childEnv(env),
    stdio: ["ignore", "ignore", "pipe"],
  });
  return { child, ...watchChild(child, running, stderrLog) };
}

/** Starts `credcache serve` as a child and resolves once it prints its ready line. */
async function startServe(
  options: {
    args?: string[];
    env?: Record<string, string>;
    dir?: string;
    listen?: string;
    /** A command the server runs under, e.g. prlimit. */
    wrap?: string[];
  } = {},
): Promise<Serve> {
  const dir = options.dir ?? (await freshDir());
  const tokenFile = join(dir, "token");
  const { child, stderr, exited } = spawnServe(
    [
      ...(options.args ?? ["--source", "imds"]),
      "--cache",
      pathToFileURL(join(dir, "cache")).href,
      "--token-file",
      tokenFile,
      "--listen",
      options.listen ?? "127.0.0.1:0",
    ],
    options.env,
    options.wrap,
  );
  let stopWaiting = () => {};
  const url = await new Promise<string>((resolve, reject) => {
    const poll = setInterval(() => {
      const ready = /ready on (http:\/\/127\.0\.0\.1:\d+)\//.exec(stderr());
      if (ready) resolve(ready[1]!);
    }, 20);
    stopWaiting = () => clearInterval(poll);
    exited.then((code) => reject(new Error(`serve exited with ${code} before it was ready: ${stderr()}`)));
  }).finally(() => stopWaiting());
  const token = await readFile(tokenFile, "utf8");
  tokens.push(token);
  return {
    child,
    url,
    port: Number(new URL(url).port),
    tokenFile,
    token,
    stderr,
    exited,
    stop: () => {
      child.kill("SIGTERM");
      return exited;
    },
  };
}

/** A `credcache serve` run that must stop before serving (memory cache, so nothing to clean). */
function serveOnce(tokenFile: string, ...more: string[]) {
  return cli.run(["serve", "--cache", "memory:", "--token-file", tokenFile, ...more]);
}

/** Polls until `check` holds; the timeout is generous, never asserted on. */
async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 20_000,
  debug?: () => Promise<string>,
) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${debug ? `: ${await debug()}` : ""}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  assertBuilt();
  emulator = await startEmulatorBehind(LIFETIME_MS, () => behindMs);
  root = await tempDir("serve");
  cli = new CliRunner({ AWS_EC2_METADATA_SERVICE_ENDPOINT: emulator.url });
});

afterEach(async () => {
  emulator.setFaults(undefined);
  behindMs = 0;
  vi.unstubAllEnvs();
  for (const child of running) child.kill("SIGKILL");
});

afterAll(async () => {
  // Every server in this file, failures included: no secret and no token in its log.
  const stderr = [...stderrLog, ...cli.stderrLog].join("\n");
  const secrets = [emulator, ...onClose].flatMap((imds) => imds.secretsIssued());
  expect(secrets.length).toBeGreaterThan(0);
  for (const secret of [...secrets, ...tokens]) expect(stderr.includes(secret)).toBe(false);
  await Promise.all([emulator, ...onClose].map((imds) => imds.close()));
  await rm(root, { recursive: true, force: true });
});

describe("credcache serve", () => {
  it("hands the SDK's fromHttp and fromContainerMetadata exactly the set IMDS serves", async () => {
    const serve = await startServe();
    vi.stubEnv("AWS_EC2_METADATA_SERVICE_ENDPOINT", emulator.url);
    const direct = await fromInstanceMetadata({ timeout: 10_000 })();
    expect(direct.accessKeyId).toBe(emulator.currentCredentials().accessKeyId);

    vi.stubEnv("AWS_CONTAINER_CREDENTIALS_FULL_URI", `${serve.url}/creds/default`);
    vi.stubEnv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", serve.tokenFile);
    const viaHttp = await fromHttp({ timeout: 10_000 })();
    vi.stubEnv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "");
    vi.stubEnv("AWS_CONTAINER_AUTHORIZATION_TOKEN", serve.token);
    const viaContainer = await fromContainerMetadata({ timeout: 10_000 })();

    for (const served of [viaHttp, viaContainer]) {
      expect(served.accessKeyId).toBe(direct.accessKeyId);
      expect(served.secretAccessKey).toBe(direct.secretAccessKey);
      expect(served.sessionToken).toBe(direct.sessionToken);
      expect(served.expiration?.toISOString()).toBe(emulator.currentCredentials().expiration.toISOString());
    }
    // fromContainerMetadata accepts only localhost and 127.0.0.1; the Host check lets both in.
    vi.stubEnv("AWS_CONTAINER_CREDENTIALS_FULL_URI", `http://localhost:${serve.port}/creds/default`);
    expect((await fromContainerMetadata({ timeout: 10_000 })()).accessKeyId).toBe(direct.accessKeyId);

    const raw = JSON.parse((await get(`${serve.url}/creds/default`, { Authorization: serve.token })).body);
    expect(Object.keys(raw).slice(0, 4)).toEqual(["AccessKeyId", "SecretAccessKey", "Token", "Expiration"]);
    expect(await serve.stop()).toBe(0);
  });

  it("1000 concurrent resolutions from 8 processes make one source fetch", async () => {
    emulator.resetStats();
    const serve = await startServe();
    const client = `
      import { fromHttp } from "@aws-sdk/credential-providers";
      const ids = await Promise.all(Array.from({ length: 125 }, () =>
        fromHttp({ timeout: 20000, maxRetries: 3 })().then((c) => c.accessKeyId)));
      process.stdout.write(JSON.stringify([...new Set(ids)]) + " " + ids.length);
    `;
    const env = childEnv({
      AWS_CONTAINER_CREDENTIALS_FULL_URI: `${serve.url}/creds/default`,
      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: serve.tokenFile,
    });
    const outputs = await Promise.all(
      Array.from(
        { length: 8 },
        () =>
          new Promise<string>((resolve, reject) => {
            const child = spawn(process.execPath, ["--input-type=module", "-e", client], {
              cwd: CLI_DIR,
              env,
              stdio: ["ignore", "pipe", "inherit"],
            });
            let out = "";
            child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
              out += chunk;
            });
            child.on("close", (code) =>
              code === 0 ? resolve(out) : reject(new Error(`client exited ${code}`)),
            );
          }),
      ),
    );
    const current = emulator.currentCredentials().accessKeyId;
    for (const out of outputs) expect(out).toBe(`${JSON.stringify([current])} 125`);
    expect(emulator.stats.credentialFetches).toBe(1);
    const metrics = (await get(`${serve.url}/metrics`)).body;
    expect(metrics).toContain('credcache_serve_source_fetches_total{credential="default"} 1\n');
    expect(metrics).toContain('credcache_serve_responses_total{credential="default",status="200"} 1000\n');
    expect(await serve.stop()).toBe(0);
  });

  it("refuses missing and wrong tokens with 401, proxied requests and foreign Host headers with 403", async () => {
    const serve = await startServe();
    const creds = `${serve.url}/creds/default`;
    const host = `127.0.0.1:${serve.port}`;
    expect((await get(creds)).status).toBe(401);
    const wrong = await get(creds, {
      Authorization: `${serve.token.slice(0, -1)}${serve.token.endsWith("0") ? "1" : "0"}`,
    });
    expect(wrong.status).toBe(401);
    // An unknown name behind a wrong token gets the same answer: no hint about which names exist.
    expect(await get(`${serve.url}/creds/nope`, { Authorization: "x" })).toEqual(wrong);
    expect((await get(creds, { Authorization: `Bearer ${serve.token}` })).status).toBe(401);
    expect((await get(creds, { Authorization: serve.token, "X-Forwarded-For": "10.1.2.3" })).status).toBe(
      403,
    );
    expect((await get(creds, { Authorization: serve.token, Forwarded: "for=10.1.2.3" })).status).toBe(403);
    expect((await get(creds, { Authorization: serve.token, Host: "attacker.example" })).status).toBe(403);
    expect(
      (await get(creds, { Authorization: serve.token, Host: `127.0.0.1:${serve.port + 1}` })).status,
    ).toBe(403);
    expect((await get(creds, { Authorization: serve.token, Host: host })).status).toBe(200);

    // What a PHP app would see with a wrong token file: the SDK fails, the server does not.
    const badTokenFile = join(root, "wrong-token");
    await writeFile(badTokenFile, "0".repeat(64));
    vi.stubEnv("AWS_CONTAINER_CREDENTIALS_FULL_URI", creds);
    vi.stubEnv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", badTokenFile);
    await expect(fromHttp({ timeout: 10_000, maxRetries: 0 })()).rejects.toThrow(/401/);

    const metrics = (await get(`${serve.url}/metrics`)).body;
    expect(metrics).toContain("credcache_serve_unauthorized_total 5\n");
    expect(metrics).toContain('credcache_serve_refused_total{reason="forwarded"} 2\n');
    expect(metrics).toContain('credcache_serve_refused_total{reason="host"} 2\n');
    expect(await serve.stop()).toBe(0);
  });

  it("refuses with 431 a request with more headers than it reads: a proxy header after 98 fillers is not served", async () => {
    const serve = await startServe();
    const creds = `${serve.url}/creds/default`;
    const fillers = (n: number) =>
      Object.fromEntries(Array.from({ length: n }, (_, i) => [`X-Filler-${i}`, "x"]));
    const host = `127.0.0.1:${serve.port}`;
    // Before: Node dropped every header past the 100th unseen, so this was a 200 with credentials.
    const padded = await get(creds, {
      Host: host,
      Authorization: serve.token,
      ...fillers(98),
      "X-Forwarded-For": "10.1.2.3",
    });
    expect(padded.status).toBe(431);
    expect(padded.body).not.toContain("SecretAccessKey");
    expect((await get(creds, { Host: host, Authorization: serve.token, ...fillers(20) })).status).toBe(200);
    const metrics = (await get(`${serve.url}/metrics`)).body;
    expect(metrics).toContain('credcache_serve_refused_total{reason="headers"} 1\n');
    expect(await serve.stop()).toBe(0);
  });

  it.each(["0.0.0.0:0", "10.0.0.1:9911", "[::]:9911", "localhost:9911", "169.254.170.2:80"])(
    "refuses --listen %s",
    async (listen) => {
      const dir = await freshDir();
      const run = await serveOnce(join(dir, "token"), "--source", "imds", "--listen", listen);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/^credcache serve: --listen .*(loopback only|expected HOST:PORT)/);
      // Nothing was started, not even the token file.
      await expect(stat(join(dir, "token"))).rejects.toThrow(/ENOENT/);
    },
  );

  it("exits 1 with one line when the port is taken", async () => {
    const first = await startServe();
    const dir = await freshDir();
    const run = await serveOnce(
      join(dir, "token"),
      "--source",
      "imds",
      "--listen",
      `127.0.0.1:${first.port}`,
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(`credcache serve: cannot listen on ${first.url}: EADDRINUSE\n`);
    expect(await first.stop()).toBe(0);
  });

  it("keeps serving the still-valid set while the source fails", { timeout: 120_000 }, async () => {
    // The emulator issues a set with 60 s left. Core asks the source again after a quarter
    // of that (EC2 may hand out the same set until shortly before expiry), in the background
    // or for the next client: by then the source fails, and every client must still get
    // the set the server holds.
    // Its own emulator: the shared one has handed out 6 h sets already.
    const imds = await startEmulatorBehind(LIFETIME_MS, () => behindMs);
    onClose.push(imds);
    behindMs = LIFETIME_MS - 60_000;
    const serve = await startServe({ env: { AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url } });
    const held = imds.currentCredentials().accessKeyId;
    imds.setFaults({ credentials: { status: 500 }, role: { status: 500 } });
    vi.stubEnv("AWS_CONTAINER_CREDENTIALS_FULL_URI", `${serve.url}/creds/default`);
    vi.stubEnv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", serve.tokenFile);
    await until(
      async () => {
        expect((await fromHttp({ timeout: 10_000 })()).accessKeyId).toBe(held);
        return /source_failures_total\{credential="default"\} [1-9]/.test(
          (await get(`${serve.url}/metrics`)).body,
        );
      },
      "a failed refresh",
      60_000,
      async () =>
        `${(await get(`${serve.url}/metrics`)).body}\n${serve.stderr()}\n${JSON.stringify(imds.stats)}`,
    );
    expect((await fromHttp({ timeout: 10_000 })()).accessKeyId).toBe(held);
    expect((await get(`${serve.url}/healthz`)).status).toBe(200);
    expect(serve.child.exitCode).toBe(null);

    // Once the source is back, the server moves on to a new set by itself.
    imds.setFaults(undefined);
    behindMs = 0;
    imds.rotate();
    const fresh = imds.currentCredentials().accessKeyId;
    await until(
      async () => (await fromHttp({ timeout: 10_000 })()).accessKeyId === fresh,
      "the new set",
      60_000,
    );
    expect(await serve.stop()).toBe(0);
  });

  it("a SIGTERM during the first fetch stops cleanly: the client waiting on it gets its set, exit 0", async () => {
    const port = await freePort();
    emulator.resetStats();
    // The first fetch takes 3 s: a client asks meanwhile, then the server is told to stop.
    emulator.setFaults({ credentials: { latencyMs: 3_000, count: 1 } });
    const dir = await freshDir();
    const tokenFile = join(dir, "token");
    const args = ["--source", "imds", "--cache", "memory:", "--token-file", tokenFile];
    const serve = spawnServe([...args, "--listen", `127.0.0.1:${port}`]);
    await until(() => emulator.stats.requests.credentials > 0, "the first fetch");
    const token = await readFile(tokenFile, "utf8");
    tokens.push(token);
    const inFlight = get(`http://127.0.0.1:${port}/creds/default`, { Authorization: token });
    // Let the request reach the server before the signal (it has 3 s to).
    await new Promise((r) => setTimeout(r, 300));
    serve.child.kill("SIGTERM");
    const reply = await inFlight;
    expect(reply.status).toBe(200);
    expect(JSON.parse(reply.body).AccessKeyId).toBe(emulator.currentCredentials().accessKeyId);
    expect(await serve.exited).toBe(0);
    expect(serve.stderr()).not.toContain("ready on");
    expect(serve.stderr()).toMatch(/SIGTERM: stopping\n(.*\n)*credcache serve: stopped\n$/);
  });

  it("a SIGTERM while the first fetch hangs stops without waiting for the source, exit 0", {
    timeout: 45_000,
  }, async () => {
    emulator.setFaults({ credentials: { hang: true } });
    emulator.resetStats();
    const dir = await freshDir();
    const args = ["--source", "imds", "--timeout", "60000", "--retries", "0", "--cache", "memory:"];
    const serve = spawnServe([...args, "--token-file", join(dir, "token"), "--listen", "127.0.0.1:0"]);
    await until(() => emulator.stats.hangs > 0, "the hanging fetch");
    serve.child.kill("SIGTERM");
    // Not after the SDK's 60 s timeout: the test's own limit would fail first.
    expect(await serve.exited).toBe(0);
    expect(serve.stderr()).not.toContain("ready on");
    expect(serve.stderr()).toMatch(/SIGTERM: stopping\n(.*\n)*credcache serve: stopped\n$/);
  });

  it("on SIGTERM lets a request that waits on the source finish, then exits 0", {
    timeout: 120_000,
  }, async () => {
    // A container-credentials source that fails until the test arms it (so the server
    // starts without a set, however often core retries), then holds its answer until the
    // test releases it: a client request is in flight when SIGTERM comes.
    const slowSet = {
      AccessKeyId: "ASIASLOWSOURCE000001",
      SecretAccessKey: "s".repeat(40),
      Token: "t".repeat(200),
      Expiration: new Date(Date.now() + 3600_000).toISOString(),
    };
    let armed = false;
    let sawSlowCall: () => void = () => {};
    const slowCall = new Promise<void>((resolve) => {
      sawSlowCall = resolve;
    });
    let answer: () => void = () => {};
    const source = createHttpServer((_req, res) => {
      if (!armed) {
        res.writeHead(500).end();
        return;
      }
      answer = () => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(slowSet));
      sawSlowCall();
    });
    await new Promise<void>((resolve) => source.listen(0, "127.0.0.1", resolve));
    const dir = await freshDir();
    const file = join(dir, "serve.json");
    await writeFile(
      file,
      JSON.stringify({ credentials: { slow: { source: "container", timeout: 30_000, retries: 0 } } }),
    );
    const serve = await startServe({
      dir,
      args: ["--credentials", file],
      env: {
        AWS_CONTAINER_CREDENTIALS_FULL_URI: `http://127.0.0.1:${(source.address() as { port: number }).port}/`,
      },
    });
    armed = true;
    let inFlight: Promise<Reply> | undefined;
    // Until core's backoff after the failed start has passed, requests get 503 at once.
    await until(
      async () => {
        const attempt = get(`${serve.url}/creds/slow`, { Authorization: serve.token });
        if ((await Promise.race([attempt, slowCall])) !== undefined) return false;
        inFlight = attempt;
        return true;
      },
      "a request waiting on the source",
      90_000,
    );
    serve.child.kill("SIGTERM");
    await until(() => serve.stderr().includes("SIGTERM: stopping"), "the server to start draining");
    answer();
    const reply = await inFlight!;
    expect(reply.status).toBe(200);
    expect(JSON.parse(reply.body).AccessKeyId).toBe(slowSet.AccessKeyId);
    expect(await serve.exited).toBe(0);
    // The answer came after the signal: the fetch finished while the server drained.
    const log = serve.stderr();
    expect(log.indexOf("fetched ASIA…0001")).toBeGreaterThan(log.indexOf("SIGTERM: stopping"));
    expect(log).toMatch(/credcache serve: stopped\n$/);
    source.close();
  });

  it("/metrics and /healthz hold no secret and no token", async () => {
    const serve = await startServe();
    await get(`${serve.url}/creds/default`, { Authorization: serve.token });
    await get(`${serve.url}/creds/default`, { Authorization: "wrong-token-0123456789" });
    const texts = [(await get(`${serve.url}/metrics`)).body, (await get(`${serve.url}/healthz`)).body];
    for (const secret of [
      ...emulator.secretsIssued(),
      serve.token,
      emulator.currentCredentials().accessKeyId,
    ]) {
      for (const text of texts) expect(text.includes(secret)).toBe(false);
    }
    expect(texts[0]).toMatch(/^credcache_serve_seconds_to_expiry\{credential="default"\} \d+$/m);
    expect(JSON.parse(texts[1]!).status).toBe("ok");
    expect(await serve.stop()).toBe(0);
  });
});

describe("credcache serve under a connection flood", () => {
  it("keeps serving token-bearing requests (>= 90%) while a local user without a token holds 1200 sockets, at an open-file limit of 1024", {
    timeout: 180_000,
  }, async () => {
    const serve = await startServe({ wrap: ["prlimit", "--nofile=1024:1024", "--"] });
    // The attacker: 1200 silent connections, each replaced as soon as the server closes it.
    const HELD = 1200;
    const sockets = new Set<Socket>();
    let flooding = true;
    let opened = 0;
    const open = () => {
      if (!flooding) return;
      const socket = connect(serve.port, "127.0.0.1");
      sockets.add(socket);
      socket.on("connect", () => {
        opened += 1;
      });
      socket.on("error", () => {});
      socket.on("close", () => {
        sockets.delete(socket);
        setTimeout(open, 5);
      });
    };
    try {
      for (let i = 0; i < HELD; i++) open();
      await until(() => opened >= HELD, "the flood to be connected", 60_000);
      // Legitimate clients: 40 requests with the token, 4 at a time, each bounded.
      const creds = `${serve.url}/creds/default`;
      const statuses: number[] = [];
      const client = async () => {
        while (statuses.length < 40) {
          statuses.push(-1);
          const slot = statuses.length - 1;
          statuses[slot] = await Promise.race([
            get(creds, { Authorization: serve.token, Host: `127.0.0.1:${serve.port}` }).then(
              (reply) => reply.status,
              () => 0,
            ),
            new Promise<number>((resolve) => setTimeout(() => resolve(0), 10_000)),
          ]);
        }
      };
      await Promise.all([client(), client(), client(), client()]);
      const served = statuses.filter((status) => status === 200).length;
      // Before: 0 of 40 (ECONNRESET: the server ran out of descriptors and dropped its backlog).
      expect(served, `statuses: ${statuses.join(",")}`).toBeGreaterThanOrEqual(36);
    } finally {
      flooding = false;
      for (const socket of sockets) socket.destroy();
    }
    expect(await serve.stop()).toBe(0);
  });
});

describe("credcache serve token file", () => {
  it("creates the token file 0600 with 64 hex characters and no line break, and reuses it", async () => {
    const dir = await freshDir();
    const first = await startServe({ dir });
    expect(first.token).toMatch(/^[0-9a-f]{64}$/);
    expect((await stat(first.tokenFile)).mode & 0o777).toBe(0o600);
    expect(await first.stop()).toBe(0);
    const second = await startServe({ dir });
    expect(second.token).toBe(first.token);
    expect(await second.stop()).toBe(0);
  });

  it("creates it 0640 for --token-group", async () => {
    const dir = await freshDir();
    const serve = await startServe({ dir, args: ["--source", "imds", "--token-group", "65534"] });
    const st = await stat(serve.tokenFile);
    expect(st.mode & 0o777).toBe(0o640);
    expect(st.gid).toBe(65534);
    expect(await serve.stop()).toBe(0);
  });

  it.each([
    ["readable by others", "a".repeat(64), 0o644, /mode is 644/],
    // Before: accepted without a word; any member of the file's group could read the token.
    [
      "readable by its group, without --token-group",
      "a".repeat(64),
      0o640,
      /mode is 640; run chmod 600 on it, or pass --token-group/,
    ],
    ["ending in a line break", `${"a".repeat(64)}\n`, 0o600, /line break/],
    ["too short", "abc", 0o600, /16 to 1024/],
  ])("refuses a token file %s", async (_, content, mode, message) => {
    const dir = await freshDir();
    const file = join(dir, "token");
    await writeFile(file, content);
    await chmod(file, mode);
    const run = await serveOnce(file, "--source", "imds");
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
    expect(run.stderr).not.toContain("a".repeat(64));
  });

  itAsOtherUser("leaves no half-made token file when it cannot give it to --token-group", async () => {
    // Run as uid 65534, which is not in group 4242: fchown fails.
    const dir = await freshDir();
    await chmod(root, 0o711);
    await chown(dir, 65534, 65534);
    const file = join(dir, "token");
    const args = [
      "serve",
      "--source",
      "imds",
      "--cache",
      "memory:",
      "--token-file",
      file,
      "--token-group",
      "4242",
    ];
    const bin = await reachableBundle(BIN);
    const run = spawnSync(
      "setpriv",
      ["--reuid", "65534", "--regid", "65534", "--clear-groups", process.execPath, bin, ...args],
      { cwd: dirname(bin), env: childEnv(), encoding: "utf8" },
    );
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/cannot give it to group 4242/);
    await expect(stat(file)).rejects.toThrow(/ENOENT/);
  });

  it("refuses a token file in a directory other users can write to", async () => {
    const dir = await freshDir();
    await chmod(dir, 0o777);
    const run = await serveOnce(join(dir, "t"), "--source", "imds");
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/writable by group (or|and) others/);
  });
});

describeAsOtherUser("credcache serve against another local user", () => {
  /** Runs the SDK's fromHttp as uid 65534 with the given groups; resolves to its outcome. */
  async function otherUser(groups: string[], serve: Serve): Promise<string> {
    const contents = `
      import { fromHttp } from "@aws-sdk/credential-providers";
      try { console.log("ok " + (await fromHttp({ timeout: 10000, maxRetries: 0 })()).accessKeyId); }
      catch (error) { console.log("failed " + error.message); }
    `;
    const ids = ["--reuid", "65534", "--regid", "65534"];
    const groupArgs = groups.length > 0 ? ["--groups", groups.join(",")] : ["--clear-groups"];
    const client = await reachableBundle({ name: "from-http.mjs", contents, resolveDir: CLI_DIR });
    return new Promise((resolve, reject) => {
      const child = spawn("setpriv", [...ids, ...groupArgs, process.execPath, client], {
        cwd: dirname(client),
        env: childEnv({
          AWS_CONTAINER_CREDENTIALS_FULL_URI: `${serve.url}/creds/default`,
          AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: serve.tokenFile,
        }),
        stdio: ["ignore", "pipe", "inherit"],
      });
      let out = "";
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
        out += chunk;
      });
      child.on("error", reject);
      child.on("close", () => resolve(out.trim()));
    });
  }

  it("a user outside --token-group cannot read the token and gets nothing; a member can", async () => {
    const dir = await freshDir();
    // Other users may reach the token by name (as with RuntimeDirectoryMode=0711), not list or write.
    await chmod(root, 0o711);
    await chmod(dir, 0o711);
    const serve = await startServe({ dir, args: ["--source", "imds", "--token-group", "4242"] });
    expect(await otherUser([], serve)).toMatch(/^failed .*EACCES/);
    expect(await otherUser(["4242"], serve)).toBe(`ok ${emulator.currentCredentials().accessKeyId}`);
    expect(await serve.stop()).toBe(0);
  });
});

describe("credcache serve with systemd", () => {
  it("sends READY=1 to NOTIFY_SOCKET once it serves", async () => {
    const dir = await freshDir();
    const socket = join(dir, "notify.sock");
    const listener = spawn(
      "python3",
      [
        "-c",
        "import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind(sys.argv[1])\nprint('bound',flush=True)\nprint(s.recv(4096).decode(),flush=True)",
        socket,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let heard = "";
    listener.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      heard += chunk;
    });
    await until(() => heard.includes("bound"), "the notify socket");
    const serve = await startServe({ env: { NOTIFY_SOCKET: socket } });
    await until(() => heard.includes("READY=1"), "READY=1");
    expect(heard).toContain(`MAINPID=${serve.child.pid}`);
    expect(await serve.stop()).toBe(0);
    listener.kill();
  });
});

describe("credcache serve with named credentials", () => {
  it("serves each name from a credentials file, and default as the file says", async () => {
    const dir = await freshDir();
    const file = join(dir, "serve.json");
    await writeFile(
      file,
      JSON.stringify({
        default: "web",
        credentials: { web: { source: "imds" }, worker: { source: "imds", timeout: 5000, retries: 1 } },
      }),
    );
    const serve = await startServe({ dir, args: ["--credentials", file] });
    const current = emulator.currentCredentials().accessKeyId;
    for (const name of ["web", "worker", "default"]) {
      const reply = await get(`${serve.url}/creds/${name}`, { Authorization: serve.token });
      expect(reply.status).toBe(200);
      expect(JSON.parse(reply.body).AccessKeyId).toBe(current);
    }
    expect((await get(`${serve.url}/creds/other`, { Authorization: serve.token })).status).toBe(404);
    expect(await serve.stop()).toBe(0);
  });

  it.each([
    ['{"credentials":{"web":{"source":"imds","proxy":"x"}}}', /unknown setting "proxy"/],
    ['{"default":"api","credentials":{"web":{"source":"imds"}}}', /"default" must name one of/],
    ['{"credentials":{"web":{"source":"imds","region":"eu-west-1"}}}', /can only be used with assume-role/],
    ["module.exports = {}", /not valid JSON/],
  ])("refuses the credentials file %s", async (content, message) => {
    const dir = await freshDir();
    const file = join(dir, "serve.json");
    await writeFile(file, content);
    const run = await serveOnce(join(dir, "token"), "--credentials", file);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
  });
});
