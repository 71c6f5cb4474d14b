// A private Redis Cluster for tests and benchmarks: 6 redis-server processes on loopback
// ports (3 masters, 3 replicas, made by `redis-cli --cluster create --cluster-replicas 1`),
// optionally TLS-only with certificates from a private CA. Needs redis-server and
// redis-cli on PATH (see redisServer.ts for the skip-or-fail rule), and openssl for TLS.
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface ClusterOptions {
  /** TLS only (no plain port), the cluster bus and replication included, with a private CA. */
  tls?: boolean;
  /** `cluster-node-timeout`: how long a master may be silent before its replica takes over. @default 2000 */
  nodeTimeoutMs?: number;
}

export interface RedisCluster {
  /** The client port of each node (the TLS port with `tls`), masters first as created. */
  readonly ports: number[];
  /** `redis://127.0.0.1:<first port>` (`rediss://localhost:...` with `tls`): one seed, as a managed endpoint gives. */
  readonly url: string;
  /** The private CA's certificate (PEM) with `tls`: trust it with NODE_EXTRA_CA_CERTS. */
  readonly caFile: string | undefined;
  /** Runs redis-cli against one node (TLS flags added) and returns its output. */
  cli(port: number, ...args: string[]): Promise<string>;
  /** The node serving `slot` as master now, and one of its replicas. */
  ownerOf(slot: number): Promise<{ master: number; replica: number | undefined }>;
  /** SIGKILLs one node. */
  kill(port: number): void;
  /** Resolves once every live node reports cluster_state:ok and agrees on who serves every slot. */
  settled(): Promise<void>;
  stop(): Promise<void>;
}

/** A port free for a node and for its cluster bus (port + 10000). */
async function freeNodePort(taken: Set<number>): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    if (taken.has(port) || taken.has(port + 10_000) || taken.has(port - 10_000)) continue;
    if ((await canListen(port)) && (await canListen(port + 10_000))) {
      taken.add(port);
      return port;
    }
  }
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** A private CA and a server certificate it signed for localhost and 127.0.0.1. */
function makeCertificates(dir: string): { caFile: string; certFile: string; keyFile: string } {
  const path = (name: string) => join(dir, name);
  const openssl = (command: string) =>
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

function startNode(port: number, dir: string, args: string[]): Promise<ChildProcess> {
  const child = spawn("redis-server", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  return new Promise((resolve, reject) => {
    const onOutput = (chunk: Buffer) => {
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

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts a 6-node cluster (3 masters, 3 replicas) and resolves once it serves every slot. */
export async function startCluster(options: ClusterOptions = {}): Promise<RedisCluster> {
  const { tls = false, nodeTimeoutMs = 2_000 } = options;
  const dir = mkdtempSync(join(tmpdir(), "credcache-cluster-"));
  const certificates = tls ? makeCertificates(dir) : undefined;
  const taken = new Set<number>();
  const ports: number[] = [];
  for (let i = 0; i < 6; i++) ports.push(await freeNodePort(taken));
  const tlsArgs = (port: number) =>
    certificates
      ? ["--port", "0", "--tls-port", String(port), "--tls-cluster", "yes", "--tls-replication", "yes"]
          .concat(["--tls-cert-file", certificates.certFile, "--tls-key-file", certificates.keyFile])
          .concat(["--tls-ca-cert-file", certificates.caFile, "--tls-auth-clients", "no"])
      : ["--port", String(port)];
  const cliTls = certificates ? ["--tls", "--cacert", certificates.caFile] : [];
  const nodes = new Map<number, ChildProcess>();
  const stop = async () => {
    await Promise.all(
      [...nodes.values()].map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.on("exit", () => resolve());
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

  const cli = async (port: number, ...args: string[]) =>
    (await run("redis-cli", [...cliTls, "-h", "127.0.0.1", "-p", String(port), ...args])).stdout;

  /** CLUSTER SLOTS as seen by `port`: [start, end, master port, replica port?]. */
  const slotsOf = async (port: number) => {
    const out = (await cli(port, "--json", "cluster", "slots")) as string;
    const table = JSON.parse(out) as Array<
      [number, number, [string, number, string], ...Array<[string, number, string]>]
    >;
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

  const cluster: RedisCluster = {
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

/** CRC16 (XMODEM) mod 16384 of a key's hash tag: the slot Redis Cluster keeps it in. */
export { slotOf } from "../src/clusterSlots.js";
