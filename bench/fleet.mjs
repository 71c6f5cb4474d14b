#!/usr/bin/env node
// `pnpm bench:fleet`: a fleet of H simulated hosts × P short-lived processes per host
// sharing one Redis, against the IMDS emulator. Each host has its own host identity (the
// `host` part of instanceMetadataKey), so instance credentials get one key per host; role
// credentials get one key for the whole fleet.
//
// Role credentials: the emulator has no STS on this branch, so the "role" rows resolve
// from IMDS too, through fromCache under one fixed key every host shares
// (`role:arn:aws:iam::123456789012:role/fleet-bench`): what is measured is the sharing,
// not the source. Expected source calls per rotation: 1 for the fleet (role), 1 per host
// (instance).
//
// Per row, H × P processes start at once on an empty Redis (a rotation: every key cold),
// then H × P more on the warm Redis (every start between rotations). Counted: source calls
// (emulator credential documents), Redis commands per process start (`INFO commandstats`,
// summed over the stats nodes), bytes on the wire per start (`INFO stats`), connections per
// start; timed: p99 time to first credential (from process start, node start-up included)
// beside the SDK alone (fromInstanceMetadata, no cache) with the same number of processes.
// Then one Redis is loaded with the warm start's commands on one key (redis-benchmark) to
// see what a single hot key can carry on this machine.
//
// Writes bench/results/fleet.md.
//
//   node bench/fleet.mjs [--hosts 1,4,16] [--per-host 4] [--kinds role,instance]
//                        [--redis-url redis://host:port] [--stats-nodes host:port,...]
//                        [--cluster] [--no-hot-key]
//
// Without --redis-url a private redis-server (from PATH) is started for the run. Cluster
// rows: pass the cluster's URL as --redis-url and every master as --stats-nodes (commands
// are summed over them, and the busiest one is shown as the hottest shard); the cluster
// fixture of packages/keyv/test can start one: `--cluster` does that (3 masters, 3 replicas
// on loopback) and writes bench/results/fleet-cluster.md instead.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { instanceMetadataKey } from "@credcache/core";
import { startImdsEmulator } from "@credcache/imds-emulator";
import { createClient } from "@redis/client";
import { startRedisServer } from "../test/support/redisServer.mjs";
import { percentile, table } from "./measure.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const { values: flags } = parseArgs({
  args: process.argv.slice(2).filter((arg) => arg !== "--"),
  options: {
    hosts: { type: "string", default: "1,4,16" },
    // 4 per host: 64 processes at once at H = 16 is what 2 cores can start without
    // measuring only the run queue.
    "per-host": { type: "string", default: "4" },
    kinds: { type: "string", default: "role,instance" },
    "redis-url": { type: "string" },
    "stats-nodes": { type: "string" },
    cluster: { type: "boolean", default: false },
    "no-hot-key": { type: "boolean", default: false },
  },
});
const HOSTS = flags.hosts.split(",").map(Number);
const PER_HOST = Number(flags["per-host"]);
const KINDS = flags.kinds.split(",");
const ROLE_KEY = "role:arn:aws:iam::123456789012:role/fleet-bench";

const cluster = flags.cluster
  ? await (await import("../packages/keyv/test/cluster.mjs")).startCluster()
  : undefined;
const server = flags["redis-url"] || cluster ? undefined : await startRedisServer();
const redisUrl = cluster?.url ?? flags["redis-url"] ?? server.url;
const statsNodes = (
  flags["stats-nodes"] ?? (cluster ? await mastersOf(cluster) : new URL(redisUrl).host)
).split(",");

/** The cluster's masters (`host:port,...`), from CLUSTER NODES: the nodes that serve the fleet's commands. */
async function mastersOf({ ports }) {
  const client = createClient({ url: `redis://127.0.0.1:${ports[0]}` });
  client.on("error", () => {});
  await client.connect();
  const text = await client.sendCommand(["CLUSTER", "NODES"]);
  await client.close();
  return String(text)
    .split("\n")
    .filter((line) => /\bmaster\b/.test(line))
    .map((line) => line.split(" ")[1].split("@")[0])
    .join(",");
}
const nodes = await Promise.all(
  statsNodes.map(async (node) => {
    const client = createClient({ url: `redis://${node}` });
    client.on("error", () => {});
    await client.connect();
    return { node, client };
  }),
);
const imds = await startImdsEmulator();

/** Empties every stats node (a replica refuses FLUSHALL: its master's flush reaches it). */
async function flush() {
  for (const { client } of nodes) await client.flushAll().catch(() => {});
}

async function resetStats() {
  for (const { client } of nodes) await client.configResetStat();
}

// The control connection's own commands (`config|resetstat` in Redis 7), never sent by a process of the fleet.
const isControl = (name) => /^(info|config|flushall)\b/.test(name);

/** `INFO commandstats` and `INFO stats` of one node: calls per command, bytes, connections. */
function parseInfo(text) {
  const commands = {};
  const stats = {};
  for (const line of text.split("\r\n")) {
    const command = /^cmdstat_([^:]+):calls=(\d+)/.exec(line);
    if (command && !isControl(command[1])) commands[command[1]] = Number(command[2]);
    const stat = /^(total_net_input_bytes|total_net_output_bytes|total_connections_received):(\d+)/.exec(
      line,
    );
    if (stat) stats[stat[1]] = Number(stat[2]);
  }
  const calls = Object.values(commands).reduce((a, b) => a + b, 0);
  return { commands, calls, stats };
}

async function readStats() {
  const perNode = [];
  for (const { node, client } of nodes) {
    perNode.push({
      node,
      ...parseInfo(`${await client.info("commandstats")}\r\n${await client.info("stats")}`),
    });
  }
  const commands = {};
  for (const n of perNode)
    for (const [k, v] of Object.entries(n.commands)) commands[k] = (commands[k] ?? 0) + v;
  const sum = (name) => perNode.reduce((a, n) => a + (n.stats[name] ?? 0), 0);
  return {
    commands,
    calls: perNode.reduce((a, n) => a + n.calls, 0),
    hottestCalls: Math.max(...perNode.map((n) => n.calls)),
    bytesIn: sum("total_net_input_bytes"),
    bytesOut: sum("total_net_output_bytes"),
    connections: sum("total_connections_received"),
  };
}

function runChild(env) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(here, "fleet-child.mjs")], {
      env: {
        ...process.env,
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
        AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url,
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    child.stdout.setEncoding("utf8").on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr.resume();
    child.on("close", () => {
      try {
        resolve(JSON.parse(stdout.trim().split("\n").pop()));
      } catch {
        resolve({ ok: false, error: `no report: ${stdout.slice(0, 200)}` });
      }
    });
  });
}

/** H × P processes at once; `keyOf(host)` is the key each host's processes use. */
async function wave(hosts, cacheUrl, keyOf) {
  const runs = [];
  for (let h = 0; h < hosts; h++) {
    for (let p = 0; p < PER_HOST; p++)
      runs.push(runChild({ FLEET_CACHE_URL: cacheUrl, FLEET_KEY: keyOf(h) }));
  }
  const results = await Promise.all(runs);
  const ttfc = results.filter((r) => r.ok).map((r) => r.ttfcMs);
  return {
    failed: results.length - ttfc.length,
    // Processes whose store read or write failed or timed out: each may have asked the source.
    cacheErrors: results.filter((r) => r.cacheErrors?.length > 0).length,
    p99: percentile(ttfc, 99),
    errors: results.map((r) => r.error),
  };
}

const keyOfKind = {
  role: () => ROLE_KEY,
  instance: (h) => instanceMetadataKey({ host: `bench:fleet-host-${h}` }),
};

async function measure(kind, hosts) {
  const starts = hosts * PER_HOST;
  await flush();
  await resetStats();
  imds.resetStats();
  const cold = await wave(hosts, redisUrl, keyOfKind[kind]);
  const coldStats = await readStats();
  const sourceCalls = imds.stats.credentialFetches;
  await resetStats();
  imds.resetStats();
  const warm = await wave(hosts, redisUrl, keyOfKind[kind]);
  const warmStats = await readStats();
  const warmSourceCalls = imds.stats.credentialFetches;
  imds.resetStats();
  const sdk = await wave(hosts, "none", () => "");
  return { kind, hosts, starts, cold, coldStats, sourceCalls, warm, warmStats, warmSourceCalls, sdk };
}

const fmt = (n, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : "–");
const rows = [];
for (const kind of KINDS) {
  for (const hosts of HOSTS) {
    process.stderr.write(`fleet: ${kind}, ${hosts} host(s) × ${PER_HOST}...\n`);
    rows.push(await measure(kind, hosts));
  }
}

const lines = [];
const say = (text = "") => {
  console.log(text);
  lines.push(text);
};
say("# Fleet benchmark");
say();
say(
  `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}, load ${loadavg()
    .map((l) => l.toFixed(2))
    .join(
      " ",
    )} at the end. Redis: ${server ? "a private redis-server (single node)" : cluster ? "a private Redis Cluster (3 masters, 3 replicas, loopback)" : redisUrl}` +
    `${nodes.length > 1 ? ` (${nodes.length} stats nodes)` : ""}. ${PER_HOST} processes per host, all started at once.`,
);
say(
  `Command: \`pnpm bench:fleet${cluster ? " -- --cluster" : ""}\` (\`node bench/fleet.mjs${cluster ? " --cluster" : ""}\`).`,
);
say();
say(
  "Cold: every key empty (one rotation). Warm: the same starts again on the filled cache (every start between rotations). " +
    "Commands and bytes are per process start; SDK alone: fromInstanceMetadata with no cache, same number of processes.",
);
say();
lines.push(
  table(
    [
      "credentials",
      "hosts × procs",
      "source calls (cold)",
      "expected",
      "source calls (warm)",
      "procs with a cache error (cold, warm)",
      "cmds/start cold",
      "cmds/start warm",
      "hottest node cmds/start warm",
      "bytes/start warm (in+out)",
      "conns/start warm",
      "p99 ttfc cold",
      "p99 ttfc warm",
      "p99 SDK alone",
      "failed",
    ],
    rows.map((r) => [
      r.kind,
      `${r.hosts} × ${PER_HOST}`,
      String(r.sourceCalls),
      String(r.kind === "role" ? 1 : r.hosts),
      String(r.warmSourceCalls),
      `${r.cold.cacheErrors}, ${r.warm.cacheErrors}`,
      fmt(r.coldStats.calls / r.starts),
      fmt(r.warmStats.calls / r.starts),
      fmt(r.warmStats.hottestCalls / r.starts),
      `${fmt(r.warmStats.bytesIn / r.starts, 0)}+${fmt(r.warmStats.bytesOut / r.starts, 0)}`,
      fmt(r.warmStats.connections / r.starts, 2),
      `${fmt(r.cold.p99, 0)} ms`,
      `${fmt(r.warm.p99, 0)} ms`,
      `${fmt(r.sdk.p99, 0)} ms`,
      String(r.cold.failed + r.warm.failed + r.sdk.failed),
    ]),
  ),
);
const biggest = rows.filter((r) => r.kind === KINDS[0]).at(-1);
if (biggest) {
  say();
  say(
    `Commands by name, ${biggest.kind} credentials, ${biggest.hosts} × ${PER_HOST} (totals over the wave):`,
  );
  say();
  say(`- cold: ${JSON.stringify(biggest.coldStats.commands)}`);
  say(`- warm: ${JSON.stringify(biggest.warmStats.commands)}`);
}
const errors = rows.flatMap((r) => [...r.cold.errors, ...r.warm.errors, ...r.sdk.errors]).filter(Boolean);
if (errors.length > 0) say(`\nFailures: ${[...new Set(errors)].slice(0, 5).join("; ")}`);

// ---- one hot key: what one Redis node carries on this machine ----
if (!flags["no-hot-key"] && server) {
  // The size of a stored record, as the fleet's GETs read it.
  let record = 0;
  for (const key of await nodes[0].client.keys("*")) {
    record = Math.max(record, await nodes[0].client.strLen(key).catch(() => 0));
  }
  const bench = (args) => {
    const run = spawnSync(
      "redis-benchmark",
      ["-h", "127.0.0.1", "-p", String(server.port), "-q", "-d", String(record), ...args],
      { encoding: "utf8" },
    );
    const match = /GET: ([\d.]+) requests per second/.exec(run.stdout ?? "");
    return match ? Number(match[1]) : Number.NaN;
  };
  await nodes[0].client.set("key:__rand_int__", "x".repeat(record));
  // Without -r every request names the one key "key:__rand_int__": the hot key.
  const kept = bench(["-t", "get", "-n", "200000", "-c", "50"]);
  // -k 0: a new connection per request, as a short-lived process opens one.
  const fresh = bench(["-t", "get", "-n", "20000", "-c", "50", "-k", "0"]);
  say();
  say(`## One hot key on one Redis node (redis-benchmark, ${record}-byte value as stored, 50 clients)`);
  say();
  lines.push(
    table(
      ["GET on one key", "requests/s"],
      [
        ["kept-alive connections", fmt(kept, 0)],
        ["a new connection per request (-k 0)", fmt(fresh, 0)],
      ],
    ),
  );
}

mkdirSync(join(here, "results"), { recursive: true });
writeFileSync(join(here, "results", cluster ? "fleet-cluster.md" : "fleet.md"), `${lines.join("\n")}\n`);
await Promise.all(nodes.map(({ client }) => client.close()));
await imds.close();
await server?.stop();
await cluster?.stop();
