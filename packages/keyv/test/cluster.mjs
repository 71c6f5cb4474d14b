// A private Redis Cluster for tests and benchmarks: 6 redis-server processes on loopback
// ports (3 masters, 3 replicas, made by `redis-cli --cluster create --cluster-replicas 1`),
// optionally TLS-only with certificates from a private CA. Needs redis-server and
// redis-cli on PATH (`redisServerOnPath`; the tests skip or fail by it, see redisServer.ts),
// and openssl for TLS. Plain JavaScript, so benchmarks run by plain node can use it too.
import { execFile, execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** A port free for a node and for its cluster bus (port + 10000). */
/** @param {Set<number>} taken @returns {Promise<number>} */
async function freeNodePort(taken) {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    if (taken.has(port) || taken.has(port + 10_000) || taken.has(port - 10_000)) continue;
    if ((await canListen(port)) && (await canListen(port + 10_000))) {
      taken.add(port);
      return port;
    }
  }
}

/** @param {number} port @returns {Promise<boolean>} */
function canListen(port) {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** A private CA and a server certificate it signed for localhost and 127.0.0.1. */
/** @param {string} dir */
function makeCertificates(dir) {
  const path = (/** @type {string} */ name) => join(dir, name);
  const openssl = (/** @type {string} */ command) =>
    execFileSync(
      "openssl",
      command.split(" ").map((word) => (word.startsWith("@") ? path(word.slice(1)) : word)),
      {
        stdio: "ignore",
      },
    );
  const newKey = "-newkey rsa:2048 -nodes";
  openssl(`req -x509 ${newKey} -keyout @ca.key -out @ca.crt -days 2 -subj /CN=credcache-test-CA`);
  openssl(`req ${newKey} -keyout @server.key -out @server.csr -subj /CN=localhost`);
  writeFileSync(path("server.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  openssl(
    "x509 -req -in @server.csr -CA @ca.crt -CAkey @ca.key -CAcreateserial -out @server.crt -days 2 -sha256 -extfile @server.ext",
  );
  return { caFile: path("ca.crt"), certFile: path("server.crt"), keyFile: path("server.key") };
}

/** @param {number} port @param {string} dir @param {string[]} args @returns {Promise<import("node:child_process").ChildProcess>} */
function startNode(port, dir, args) {
  const child = spawn("redis-server", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  return new Promise((resolve, reject) => {
    const onOutput = (/** @type {Buffer} */ chunk) => {
      output += chunk.toString();
      if (output.includes("Ready to accept connections")) resolve(child);
    };
    child.stdout?.on("data", onOutput);
    child.stderr?.on("data", onOutput);
    child.on("error", reject);
    child.on("exit", (code) =>
      reject(new Error(`redis-server on ${port} exited (${code}): ${output.slice(-500)}`)),
    );
  });
}

const sleep = (/** @type {number} */ ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts a 6-node cluster (3 masters, 3 replicas) and resolves once it serves every slot. */
/** @param {import("./cluster.mjs").ClusterOptions} [options] @returns {Promise<import("./cluster.mjs").RedisCluster>} */
export async function startCluster(options = {}) {
  const { tls = false, nodeTimeoutMs = 2_000 } = options;
  const dir = mkdtempSync(join(tmpdir(), "credcache-cluster-"));
  const certificates = tls ? makeCertificates(dir) : undefined;
  const taken = new Set();
  /** @type {number[]} */
  const ports = [];
  for (let i = 0; i < 6; i++) ports.push(await freeNodePort(taken));
  const tlsArgs = (/** @type {number} */ port) =>
    certificates
      ? ["--port", "0", "--tls-port", String(port), "--tls-cluster", "yes", "--tls-replication", "yes"]
          .concat(["--tls-cert-file", certificates.certFile, "--tls-key-file", certificates.keyFile])
          .concat(["--tls-ca-cert-file", certificates.caFile, "--tls-auth-clients", "no"])
      : ["--port", String(port)];
  const cliTls = certificates ? ["--tls", "--cacert", certificates.caFile] : [];
  /** @type {Map<number, import("node:child_process").ChildProcess>} */
  const nodes = new Map();
  const stop = async () => {
    await Promise.all(
      [...nodes.values()].map(
        (child) =>
          new Promise((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve(undefined);
            child.on("exit", () => resolve(undefined));
            child.kill("SIGKILL");
          }),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.all(
      ports.map(async (port) => {
        const args = [...tlsArgs(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
          .concat(["--cluster-enabled", "yes", "--cluster-config-file", `nodes-${port}.conf`])
          .concat(["--cluster-node-timeout", String(nodeTimeoutMs), "--cluster-replica-validity-factor", "0"])
          .concat(["--dir", dir, "--logfile", ""]);
        nodes.set(port, await startNode(port, dir, args));
      }),
    );
    await run("redis-cli", [
      ...cliTls,
      "--cluster",
      "create",
      ...ports.map((port) => `127.0.0.1:${port}`),
      "--cluster-replicas",
      "1",
      "--cluster-yes",
    ]);
  } catch (error) {
    await stop();
    throw error;
  }

  const cli = async (/** @type {number} */ port, /** @type {string[]} */ ...args) =>
    (await run("redis-cli", [...cliTls, "-h", "127.0.0.1", "-p", String(port), ...args])).stdout;

  /** CLUSTER SLOTS as seen by `port`: [start, end, master port, replica port?]. */
  const slotsOf = async (/** @type {number} */ port) => {
    const out = await cli(port, "--json", "cluster", "slots");
    /** @type {Array<[number, number, [string, number, string], ...Array<[string, number, string]>]>} */
    const table = JSON.parse(out);
    return table.map(([start, end, master, replica]) => ({
      start,
      end,
      master: master[1],
      replica: replica?.[1],
    }));
  };

  const live = () =>
    ports.filter((port) => {
      const child = nodes.get(port);
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    });

  /** @type {import("./cluster.mjs").RedisCluster} */
  const cluster = {
    ports,
    url: tls ? `rediss://localhost:${ports[0]}` : `redis://127.0.0.1:${ports[0]}`,
    caFile: certificates?.caFile,
    cli,
    async ownerOf(slot) {
      for (const port of live()) {
        try {
          const range = (await slotsOf(port)).find(({ start, end }) => start <= slot && slot <= end);
          if (range) return { master: range.master, replica: range.replica };
        } catch {
          // a node that is going away: ask the next
        }
      }
      throw new Error(`no live node serves slot ${slot}`);
    },
    kill(port) {
      nodes.get(port)?.kill("SIGKILL");
    },
    async settled() {
      const deadline = Date.now() + 60_000;
      for (;;) {
        try {
          const views = await Promise.all(
            live().map(async (port) => {
              const info = await cli(port, "cluster", "info");
              if (!info.includes("cluster_state:ok")) throw new Error(`${port} not ok`);
              const slots = await slotsOf(port);
              const covered = slots.reduce((sum, { start, end }) => sum + end - start + 1, 0);
              if (covered !== 16_384) throw new Error(`${port} sees ${covered} slots`);
              // With every node up, every master has its replica attached (a failover test needs one).
              if (live().length === ports.length && slots.some(({ replica }) => replica === undefined)) {
                throw new Error(`${port} sees a master without a replica`);
              }
              return JSON.stringify(slots.map(({ start, end, master }) => [start, end, master]).sort());
            }),
          );
          if (new Set(views).size === 1) return;
        } catch (error) {
          if (Date.now() > deadline) throw error;
        }
        if (Date.now() > deadline) throw new Error("the cluster did not settle within 60 s");
        await sleep(200);
      }
    },
    stop,
  };
  try {
    await cluster.settled();
  } catch (error) {
    await stop();
    throw error;
  }
  return cluster;
}

/** Whether redis-server is on PATH: without it, skip with one line (fail when CI is set). */
export const redisServerOnPath = spawnSync("redis-server", ["--version"], { stdio: "ignore" }).status === 0;
