// Runs inside a private network namespace (clients.test.ts starts it with `unshare -n`),
// where lo holds 169.254.170.2 (the ECS agent's address), so nothing outside can reach it.
// It starts the IMDS emulator (for serve, at 127.0.0.1:80), `credcache serve --ecs-agent`
// (the built CLI) on 169.254.170.2:80 and a local SQS endpoint, runs each client as a stock
// child process with only AWS_CONTAINER_CREDENTIALS_RELATIVE_URI set, and prints one JSON
// report on stdout. The report holds access key ids, versions and counts; never a secret or
// the relative URI. 169.254.169.254 is added to lo, with a second emulator, only for the
// last phase (PHP straight to IMDS): before it, a client that missed serve cannot quietly
// get a set from IMDS instead.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile } from "node:fs/promises";
import { createServer, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { fromContainerMetadata } from "@aws-sdk/credential-providers";
import { startImdsEmulator } from "@credcache/imds-emulator";
import { sigv4Problem } from "./sigv4.mjs";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const BIN = fileURLToPath(new URL("../../dist/bin.cjs", import.meta.url));
const CLIENTS = join(HERE, "clients");
const HERD = Number(process.env.CREDCACHE_INTEROP_HERD ?? 16);

const work = await mkdtemp(join(tmpdir(), "credcache-interop-"));
const home = join(work, "home");
await mkdir(home, { mode: 0o700 });

/** Runs a command with only the variables given (PATH aside); resolves with its output. */
function run(command, args, env = {}) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { env: { PATH: process.env.PATH, HOME: home, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c) => {
      stdout += c;
    });
    child.stderr.setEncoding("utf8").on("data", (c) => {
      stderr += c;
    });
    child.on("error", (error) => resolve({ code: -1, stdout, stderr: String(error) }));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** An absolute path found with the caller's own environment (pyenv shims need the real HOME). */
function which(command, probe) {
  const found = spawnSync(probe ?? "sh", probe ? [] : ["-c", `command -v ${command}`], { encoding: "utf8" });
  return found.status === 0 ? found.stdout.trim() : undefined;
}

function debianVersion(pkg) {
  const found = spawnSync("dpkg-query", ["-W", `-f=\${Version}`, pkg], { encoding: "utf8" });
  return found.status === 0 && found.stdout ? found.stdout.replace(/-[^-]+$/, "") : undefined;
}

const emulator = await startImdsEmulator({ host: "127.0.0.1", port: 80 });

/** The local SQS endpoint: answers SendMessage when the signature is made with the expected set. */
let expected;
const sqsChecks = [];
const sqs = createServer((req, res) => {
  let body = "";
  req.setEncoding("utf8").on("data", (c) => {
    body += c;
  });
  req.on("end", () => {
    const problem = sigv4Problem(req, body, expected);
    sqsChecks.push(problem ?? "ok");
    if (problem) {
      res.writeHead(403, { "content-type": "text/xml" });
      res.end(
        `<ErrorResponse><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>${problem}</Message></Error></ErrorResponse>`,
      );
      return;
    }
    res.writeHead(200, { "content-type": "text/xml" });
    res.end(
      "<SendMessageResponse><SendMessageResult><MessageId>interop-1</MessageId><MD5OfMessageBody>5d41402abc4b2a76b9719d911017c592</MD5OfMessageBody></SendMessageResult></SendMessageResponse>",
    );
  });
});
await new Promise((resolve) => sqs.listen(0, "127.0.0.1", resolve));
const sqsEndpoint = `http://127.0.0.1:${sqs.address().port}`;

/** `credcache serve --ecs-agent` on 169.254.170.2:80, with its own cache; resolves when ready. */
async function startServe(name, listen = "169.254.170.2:80") {
  const dir = join(work, name);
  await mkdir(dir, { mode: 0o700 });
  const args = [
    "serve",
    "--ecs-agent",
    "--source",
    "imds",
    "--cache",
    pathToFileURL(join(dir, "cache")).href,
    "--token-file",
    join(dir, "token"),
    "--listen",
    listen,
  ];
  const env = { AWS_EC2_METADATA_SERVICE_ENDPOINT: "http://127.0.0.1:80" };
  const printed = await run(process.execPath, [BIN, ...args, "--print-env", "default"], env);
  const relativeUri = /^AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=(\S+)\n$/.exec(printed.stdout)?.[1];
  if (!relativeUri) throw new Error(`--print-env failed: ${printed.stderr}`);
  const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH, ...env } });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (c) => {
    stderr += c;
  });
  const exited = new Promise((resolve) => child.on("close", resolve));
  await new Promise((resolve, reject) => {
    const poll = setInterval(() => {
      if (stderr.includes(`ready on http://${listen} `)) {
        clearInterval(poll);
        resolve();
      }
    }, 20);
    exited.then((code) => {
      clearInterval(poll);
      reject(new Error(`serve exited with ${code}: ${stderr}`));
    });
  });
  return {
    relativeUri,
    log: () => stderr,
    stop: () => {
      child.kill("SIGTERM");
      return exited;
    },
  };
}

/** The set serve hands out now, read the way the clients read it. */
function servedSet(relativeUri) {
  return new Promise((resolve, reject) => {
    request(`http://169.254.170.2${relativeUri}`, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (c) => {
        body += c;
      });
      res.on("end", () => resolve(JSON.parse(body)));
    })
      .on("error", reject)
      .end();
  });
}

/** Clients may move the expiration earlier by their own refresh margin (Go v2: 5 min), never later. */
const MAX_EARLIER_S = 600;

/**
 * Compares what a client printed with the served set: the fields that differ (never the
 * values), and how many seconds earlier than served the client will treat the set as expired.
 */
function compare(got, want) {
  const wrong = ["AccessKeyId", "SecretAccessKey", "Token"].filter((field) => got[field] !== want[field]);
  const earlierS = got.Expiration
    ? Math.round((Date.parse(want.Expiration) - Date.parse(got.Expiration)) / 1000)
    : 0;
  if (!(earlierS >= 0 && earlierS <= MAX_EARLIER_S)) wrong.push("Expiration");
  return { wrong, earlierS };
}

// Each client: how to find it, how to run it (with the environment given), its version.
const clients = [
  {
    name: "php-async-aws",
    packages: "php-cli php-async-aws-core php-async-aws-sqs",
    find() {
      const php = which("php");
      if (!php) return undefined;
      const probe = spawnSync(php, [
        "-r",
        'exit(stream_resolve_include_path("AsyncAws/Sqs/autoload.php") ? 0 : 1);',
      ]);
      return probe.status === 0 ? { command: php, args: [join(CLIENTS, "async-aws-sqs.php")] } : undefined;
    },
    version: () => debianVersion("php-async-aws-core"),
    // Its providers' 1 s timeout raised (see the PHP script): a loaded machine must not fail the test.
    env: { SQS_ENDPOINT: sqsEndpoint, ASYNC_AWS_PROVIDER_TIMEOUT: "10" },
  },
  {
    name: "ruby-aws-sdk-core",
    packages: "ruby-aws-sdk-core",
    find() {
      const ruby = which("ruby");
      if (!ruby) return undefined;
      const probe = spawnSync(ruby, ["-e", 'require "aws-sdk-core"']);
      return probe.status === 0 ? { command: ruby, args: [join(CLIENTS, "ecs-credentials.rb")] } : undefined;
    },
  },
  {
    name: "botocore",
    packages: "python3-botocore (or pip install botocore)",
    find() {
      const python = which("python3");
      if (!python) return undefined;
      // The interpreter itself, not a pyenv shim: the clients run with an empty HOME.
      const probe = spawnSync(python, ["-c", "import sys, botocore; print(sys.executable)"], {
        encoding: "utf8",
      });
      return probe.status === 0
        ? { command: probe.stdout.trim(), args: [join(CLIENTS, "botocore-container.py")] }
        : undefined;
    },
  },
  {
    name: "go-sdk-v2",
    packages: "golang-go golang-github-aws-aws-sdk-go-v2-dev",
    find() {
      const go = which("go");
      const gopath = "/usr/share/gocode";
      if (!go || !existsSync(join(gopath, "src/github.com/aws/aws-sdk-go-v2/config"))) return undefined;
      const out = join(work, "go-client");
      const built = spawnSync(go, ["build", "-o", out, "."], {
        cwd: join(CLIENTS, "go"),
        env: { ...process.env, GO111MODULE: "off", GOPATH: gopath, GOFLAGS: "" },
        encoding: "utf8",
      });
      if (built.status !== 0) throw new Error(`go build failed: ${built.stderr}`);
      return { command: out, args: [] };
    },
    version: () => {
      const file = "/usr/share/gocode/src/github.com/aws/aws-sdk-go-v2/config/go_module_metadata.go";
      return existsSync(file)
        ? /goModuleVersion = "([^"]+)"/.exec(readFileSync(file, "utf8"))?.[1]
        : undefined;
    },
  },
];

/** Runs one found client against a relative URI; its result for the report. */
async function runClient(client, found, relativeUri) {
  const out = await run(found.command, found.args, {
    AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: relativeUri,
    ...client.env,
  });
  let got;
  try {
    got = JSON.parse(out.stdout.trim().split("\n").pop());
  } catch {
    return { status: "fail", why: `exit ${out.code}: ${out.stderr.slice(0, 400)}` };
  }
  const { wrong, earlierS } = compare(got, expected);
  return {
    status: wrong.length === 0 && out.code === 0 ? "ok" : "fail",
    version: client.version?.() ?? got.Version,
    accessKeyId: got.AccessKeyId,
    expiresEarlierBySeconds: earlierS,
    ...(wrong.length > 0 && { why: `differs in ${wrong.join(", ")}` }),
    ...(got.MessageId !== undefined && { sqsMessageId: got.MessageId, sqsChecks: [...sqsChecks] }),
  };
}

const report = { clients: {}, herd: undefined };
const found = new Map();
const serve = await startServe("clients");
try {
  expected = await servedSet(serve.relativeUri);
  report.accessKeyId = expected.AccessKeyId;
  for (const client of clients) {
    found.set(client.name, client.find());
    report.clients[client.name] = found.get(client.name)
      ? await runClient(client, found.get(client.name), serve.relativeUri)
      : { status: "skip", why: `not installed (${client.packages})` };
  }
  // The JS SDK v3, in this process: fromContainerMetadata reads the same variable.
  process.env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI = serve.relativeUri;
  try {
    const js = await fromContainerMetadata({ timeout: 10_000, maxRetries: 2 })();
    const got = {
      AccessKeyId: js.accessKeyId,
      SecretAccessKey: js.secretAccessKey,
      Token: js.sessionToken,
      Expiration: js.expiration?.toISOString(),
    };
    const { wrong, earlierS } = compare(got, expected);
    const manifest = JSON.parse(
      await readFile(
        fileURLToPath(import.meta.resolve("@aws-sdk/credential-providers/package.json")),
        "utf8",
      ).catch(() => '{"version":null}'),
    );
    report.clients["js-sdk-v3"] = {
      status: wrong.length === 0 ? "ok" : "fail",
      version: manifest.version ?? undefined,
      accessKeyId: js.accessKeyId,
      expiresEarlierBySeconds: earlierS,
      ...(wrong.length > 0 && { why: `differs in ${wrong.join(", ")}` }),
    };
  } catch (error) {
    report.clients["js-sdk-v3"] = { status: "fail", why: String(error?.message ?? error) };
  } finally {
    delete process.env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI;
  }
} finally {
  await serve.stop();
}
// What serve logged: no secret it served, not the relative URI (the capability).
const leaked = [expected.SecretAccessKey, expected.Token, serve.relativeUri.split("/").pop()].filter((s) =>
  serve.log().includes(s),
);
report.serveLog = { lines: serve.log().split("\n").filter(Boolean).length, leaks: leaked.length };

// A PHP-FPM-like herd: HERD PHP processes at once, through serve in ECS-agent mode (a fresh
// cache, so serve's own first fetch counts), then the same processes straight to IMDS.
const php = found.get("php-async-aws");
if (php) {
  // Stock providers, stock order; their 1 s timeout raised so the counts do not depend on
  // how loaded the machine is (a timed-out PHP process would fetch again, or get nothing).
  const patient = { ASYNC_AWS_PROVIDER_TIMEOUT: "10" };
  const before = emulator.stats.credentialFetches;
  const herdServe = await startServe("herd");
  const viaServe = await Promise.all(
    Array.from({ length: HERD }, () =>
      run(php.command, php.args, {
        AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: herdServe.relativeUri,
        ...patient,
      }),
    ),
  );
  await herdServe.stop();
  const serveFetches = emulator.stats.credentialFetches - before;
  // No relative URI: AsyncAws's chain ends at its InstanceProvider (IMDSv1 GETs, no token).
  const added = spawnSync("ip", ["addr", "add", "169.254.169.254/32", "dev", "lo"], { encoding: "utf8" });
  if (added.status !== 0) throw new Error(`cannot add 169.254.169.254 to lo: ${added.stderr}`);
  const imds = await startImdsEmulator({ host: "169.254.169.254", port: 80 });
  const direct = await Promise.all(Array.from({ length: HERD }, () => run(php.command, php.args, patient)));
  const after = imds.stats;
  await imds.close();
  report.herd = {
    processes: HERD,
    viaServe: { ok: viaServe.filter((r) => r.code === 0).length, sourceFetches: serveFetches },
    direct: {
      ok: direct.filter((r) => r.code === 0).length,
      sourceFetches: after.credentialFetches,
      imdsRequests: after.requests.total,
      imdsv1Reads: after.reads.withoutToken,
    },
  };
}

// The other documented setup: serve on a loopback port, 169.254.170.2:80 redirected to it
// by a DNAT rule in OUTPUT (host processes), the stock PHP and Ruby clients unchanged.
const iptables = which("iptables");
if (!iptables) {
  report.dnat = { status: "skip", why: "not installed (iptables)" };
} else {
  const port = 51679;
  const rule = ["-t", "nat", "-A", "OUTPUT", "-d", "169.254.170.2", "-p", "tcp", "--dport", "80"];
  const added = spawnSync(iptables, [...rule, "-j", "DNAT", "--to-destination", `127.0.0.1:${port}`], {
    encoding: "utf8",
  });
  if (added.status !== 0) throw new Error(`iptables failed: ${added.stderr}`);
  const dnatServe = await startServe("dnat", `127.0.0.1:${port}`);
  try {
    expected = await servedSet(dnatServe.relativeUri);
    report.dnat = { status: "ok", clients: {} };
    for (const client of clients.filter(
      (c) => c.name === "php-async-aws" || c.name === "ruby-aws-sdk-core",
    )) {
      const result = found.get(client.name)
        ? await runClient(client, found.get(client.name), dnatServe.relativeUri)
        : { status: "skip", why: `not installed (${client.packages})` };
      report.dnat.clients[client.name] = result.status;
    }
  } finally {
    await dnatServe.stop();
  }
}

report.secretsIssued = emulator.secretsIssued().length;
sqs.close();
await emulator.close();
process.stdout.write(`${JSON.stringify(report)}\n`);
