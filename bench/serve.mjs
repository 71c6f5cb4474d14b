// Credential resolution through `credcache serve`, beside a raw loopback GET of the same
// payload (the floor), a warm `credcache process` spawn and the SDK's own IMDS fetch.
// Run: node bench/serve.mjs   (after `pnpm build`)
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { fromHttp, fromInstanceMetadata } from "@aws-sdk/credential-providers";
import { startImdsEmulator } from "@credcache/imds-emulator";
import { fmtMicros, fmtRatio, interleave, percentile, table } from "./measure.mjs";

const BIN = fileURLToPath(new URL("../packages/cli/dist/bin.cjs", import.meta.url));

/** A child process that prints `ready on http://127.0.0.1:PORT/` on stderr; resolves to the base URL. */
function startChild(args, env) {
  const child = spawn(process.execPath, args, { env, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  const url = new Promise((resolve, reject) => {
    child.stderr.setEncoding("utf8").on("data", (chunk) => {
      stderr += chunk;
      const ready = /ready on (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr);
      if (ready) resolve(ready[1]);
    });
    child.on("close", (code) => reject(new Error(`${args.join(" ")} exited with ${code}: ${stderr}`)));
  });
  return { child, url };
}

/** The floor: a bare node:http server in its own process that answers one fixed body. */
const FLOOR_SERVER = `
  const body = process.env.BODY;
  require("node:http").createServer((req, res) => {
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  }).listen(0, "127.0.0.1", function () {
    process.stderr.write("ready on http://127.0.0.1:" + this.address().port + "/\\n");
  });
`;

/** One GET on a new connection (as the SDK's fromHttp makes), body parsed. */
function rawGet(url, headers) {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (chunk) => {
        body += chunk;
      });
      res.on("end", () => (res.statusCode === 200 ? resolve(JSON.parse(body)) : reject(new Error(body))));
    });
    req.on("error", reject);
    req.end();
  });
}

function timeSpawn(args, env) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(process.execPath, args, { env, stdio: ["ignore", "ignore", "ignore"] });
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0
        ? resolve(Number(process.hrtime.bigint() - started) / 1000)
        : reject(new Error(`credcache process exited with ${code}`)),
    );
  });
}

/**
 * @returns `{ rows, text, ratio }`: the table (also printed) and fromHttp-through-serve p50
 *   over the raw-GET floor p50 (target <= 2).
 */
export async function runServeBench({ rounds = 20, spawns = 20 } = {}) {
  const imds = await startImdsEmulator({ port: 0 });
  const dir = mkdtempSync(join(tmpdir(), "credcache-bench-serve-"));
  const cache = pathToFileURL(join(dir, "cache")).href;
  const tokenFile = join(dir, "token");
  // The SDK reads the endpoint from process.env on each resolution.
  process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = imds.url;
  const env = { ...process.env };
  delete env.CREDCACHE_URL;
  delete env.CREDCACHE_CONFIG;
  const serve = startChild(
    [
      BIN,
      "serve",
      "--source",
      "imds",
      "--cache",
      cache,
      "--token-file",
      tokenFile,
      "--listen",
      "127.0.0.1:0",
    ],
    env,
  );
  let floor;
  try {
    const serveUrl = `${await serve.url}/creds/default`;
    const token = readFileSync(tokenFile, "utf8");
    const payload = await rawGet(serveUrl, { Authorization: token });
    floor = startChild(["-e", FLOOR_SERVER], { ...env, BODY: JSON.stringify(payload) });
    const floorUrl = `${await floor.url}/`;
    const viaServe = () =>
      fromHttp({ awsContainerCredentialsFullUri: serveUrl, awsContainerAuthorizationTokenFile: tokenFile })();
    // The SDK reads the token file on every call; so it does here, for the same client cost.
    const viaFloor = () =>
      fromHttp({ awsContainerCredentialsFullUri: floorUrl, awsContainerAuthorizationTokenFile: tokenFile })();

    const results = await interleave(
      [
        { name: "SDK fromHttp → credcache serve", run: viaServe },
        { name: "SDK fromHttp → static server (same token file)", run: viaFloor },
        { name: "raw GET → credcache serve", run: () => rawGet(serveUrl, { Authorization: token }) },
        { name: "raw GET → static server (floor)", run: () => rawGet(floorUrl, {}) },
        { name: "SDK fromInstanceMetadata → IMDS emulator", run: () => fromInstanceMetadata()() },
      ],
      { rounds, perRound: 20 },
    );

    // A process start is ~1000x slower: its own loop, warm cache (filled by serve).
    const processArgs = [BIN, "process", "--source", "imds", "--cache", cache];
    await timeSpawn(processArgs, env);
    const spawnSamples = [];
    for (let i = 0; i < spawns; i++) spawnSamples.push(await timeSpawn(processArgs, env));
    results.push({
      name: "credcache process, warm cache (spawn)",
      p50: percentile(spawnSamples, 50),
      p99: percentile(spawnSamples, 99),
      n: spawnSamples.length,
    });

    const metrics = await fetch(`${await serve.url}/metrics`).then((r) => r.text());
    const fetches = /credcache_serve_source_fetches_total\{credential="default"\} (\d+)/.exec(metrics)?.[1];

    const floorP50 = results[3].p50;
    const servedP50 = results[0].p50;
    const title = "## credcache serve: one credential resolution (new connection per call, as the SDK makes)";
    console.log(`\n${title}\n`);
    const text = table(
      ["case", "n", "p50", "p99", "p50 / raw GET floor", "p50 / fromHttp → static", "p50 / fromHttp → serve"],
      results.map((r) => [
        r.name,
        r.n,
        fmtMicros(r.p50),
        fmtMicros(r.p99),
        fmtRatio(r.p50 / floorP50),
        fmtRatio(r.p50 / results[1].p50),
        fmtRatio(r.p50 / servedP50),
      ]),
    );
    const ratio = servedP50 / floorP50;
    const serverCost = results[2].p50 / floorP50;
    const verdict =
      `fromHttp → serve / raw GET floor: ${fmtRatio(ratio)} (target ≤ 2×: ${ratio <= 2 ? "PASS" : "FAIL"}); ` +
      `the server's own share (raw GET → serve / floor): ${fmtRatio(serverCost)}; ` +
      `source fetches by serve during the run: ${fetches ?? "?"}`;
    console.log(`\n${verdict}`);
    return { rows: results, ratio, text: `${title}\n\n${text}\n\n${verdict}` };
  } finally {
    serve.child.kill("SIGTERM");
    floor?.child.kill("SIGTERM");
    await imds.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await runServeBench();
