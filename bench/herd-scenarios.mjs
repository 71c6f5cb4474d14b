// The herd scenarios of issue 11, run by `node bench/herd.mjs --scenarios cold-sdk,outage,paused,extended`:
//
// - cold-sdk: a cold herd with the SDK's own defaults (`fromInstanceMetadata()`, 1 s
//   timeout, 0 retries) wrapped in fromCache, and with the preset, beside the SDK alone;
//   then the same with CPU-hog processes beside it (a starved host).
// - outage: a valid set with 10 min left in the store, IMDS hanging (then 500, then 429);
//   long-running fromCache processes and `credcache process` runs ask throughout.
// - paused: a lock holder SIGSTOPped between its fetch and its write; a successor
//   refreshes a newer set; the holder resumes. The store must keep the newer set.
// - extended: IMDS serves one expired set; the store must never hold it as fresh.
//
// Every default comes from @credcache/core (REFRESH_DEFAULTS, PROCESS_DEFAULTS, backoffMs);
// nothing here restates one. Every loop and wait is capped; every child is killed at the end.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, request } from "node:http";
import { loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createCache } from "@credcache/config";
import {
  backoffMs,
  instanceMetadataKey,
  PROCESS_DEFAULTS,
  parseRecord,
  parseRefreshState,
  REFRESH_DEFAULTS,
  refreshStateKey,
  toRecord,
} from "@credcache/core";
import { startImdsEmulator } from "@credcache/imds-emulator";
import { markdownTable } from "./herd-report.mjs";
import { percentile } from "./measure.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const HERD_CHILD = join(here, "herd-child.mjs");
const SCENARIO_CHILD = join(here, "scenario-child.mjs");
const CLI = join(root, "packages", "cli", "dist", "bin.cjs");
const MINUTE = 60_000;

export const SCENARIOS = ["cold-sdk", "outage", "paused", "extended", "hang6s"];

/** Every process this module started and has not seen exit: killed on the way out. */
const live = new Set();
process.on("exit", () => {
  for (const proc of live) proc.kill("SIGKILL");
});

const sleep = (/** @type {number} */ ms) => new Promise((resolve) => setTimeout(resolve, ms));
const baseEnv = { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" };

/**
 * Starts a node process; resolves when it exits, with its stdout lines parsed as JSON where
 * they are JSON. Killed after `capMs` whatever happens.
 *
 * @returns {{ proc: import("node:child_process").ChildProcess, started: number,
 *   lines: any[], onLine: (fn: (line: any) => void) => void,
 *   done: Promise<{ code: number | null, signal: string | null, lines: any[], stdout: string, stderr: string, firstOutputMs: number, exitMs: number }> }}
 */
function run(/** @type {string[]} */ args, /** @type {Record<string, string>} */ env, capMs = 120_000) {
  const started = performance.now();
  const proc = spawn(process.execPath, args, {
    cwd: root,
    env: { ...baseEnv, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  live.add(proc);
  /** @type {any[]} */
  const lines = [];
  /** @type {Array<(line: any) => void>} */
  const listeners = [];
  let buffer = "";
  let stdout = "";
  let stderr = "";
  let firstOutputMs = Number.NaN;
  proc.stdout?.setEncoding("utf8").on("data", (chunk) => {
    if (Number.isNaN(firstOutputMs)) firstOutputMs = performance.now() - started;
    buffer += chunk;
    if (stdout.length < 64_000) stdout += chunk;
    let newline = buffer.indexOf("\n");
    while (newline >= 0) {
      const text = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      let line;
      try {
        line = JSON.parse(text);
      } catch {
        line = text;
      }
      lines.push(line);
      for (const fn of listeners) fn(line);
      newline = buffer.indexOf("\n");
    }
  });
  proc.stderr?.setEncoding("utf8").on("data", (chunk) => {
    if (stderr.length < 4_000) stderr += chunk;
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), capMs);
  const done = new Promise((resolve) => {
    proc.on("close", (code, signal) => {
      clearTimeout(timer);
      live.delete(proc);
      if (buffer.trim()) {
        try {
          lines.push(JSON.parse(buffer));
        } catch {
          lines.push(buffer);
        }
      }
      resolve({ code, signal, lines, stdout, stderr, firstOutputMs, exitMs: performance.now() - started });
    });
  });
  return { proc, started, lines, onLine: (fn) => listeners.push(fn), done };
}

const lastJson = (/** @type {any[]} */ lines) => [...lines].reverse().find((l) => typeof l === "object");

/** Waits for a line matching `match`, at most `capMs`. */
function waitLine(/** @type {ReturnType<typeof run>} */ child, match, capMs = 60_000) {
  const seen = child.lines.find(match);
  if (seen) return Promise.resolve(seen);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no matching line within ${capMs} ms`)), capMs);
    child.onLine((line) => {
      if (match(line)) {
        clearTimeout(timer);
        resolve(line);
      }
    });
    child.done.then(() => {
      clearTimeout(timer);
      reject(new Error("the child exited first"));
    });
  });
}

/** Polls `check` every 50 ms for at most `capMs`. */
async function until(/** @type {() => boolean} */ check, capMs) {
  const end = Date.now() + capMs;
  while (!check()) {
    if (Date.now() > end) return false;
    await sleep(50);
  }
  return true;
}

/** CPU hogs: busy loops that stop by themselves after `capMs` if nobody kills them first. */
function startHogs(/** @type {number} */ count, capMs = 15 * MINUTE) {
  return Array.from(
    { length: count },
    () =>
      run(["-e", `const end = Date.now() + ${capMs}; while (Date.now() < end) {}`], {}, capMs + 5_000).proc,
  );
}
async function stopHogs(/** @type {import("node:child_process").ChildProcess[]} */ hogs) {
  await Promise.all(
    hogs.map(
      (hog) =>
        new Promise((resolve) => {
          if (hog.exitCode !== null || hog.signalCode !== null) return resolve(undefined);
          hog.once("close", resolve);
          hog.kill("SIGKILL");
        }),
    ),
  );
}

/**
 * A pass-through proxy in front of the emulator that counts the requests in flight at
 * once (a hung request stays in flight until its client gives up), so "never more than
 * one attempt in flight" is measured where IMDS would see it.
 */
async function countingProxy(/** @type {string} */ target) {
  const upstream = new URL(target);
  let inFlight = 0;
  let maxInFlight = 0;
  let requests = 0;
  /** @type {Array<[number, number]>} request intervals (epoch ms), for the report */
  const intervals = [];
  const server = createServer((req, res) => {
    const started = Date.now();
    inFlight += 1;
    requests += 1;
    maxInFlight = Math.max(maxInFlight, inFlight);
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      inFlight -= 1;
      intervals.push([started, Date.now()]);
      upstreamReq.destroy();
    };
    const upstreamReq = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        upstreamRes.pipe(res);
      },
    );
    upstreamReq.on("error", () => res.destroy());
    req.pipe(upstreamReq);
    res.on("close", end);
  });
  /** @type {Set<import("node:net").Socket>} */
  const sockets = new Set();
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(undefined)));
  const address = /** @type {import("node:net").AddressInfo} */ (server.address());
  return {
    url: `http://127.0.0.1:${address.port}`,
    get maxInFlight() {
      return maxInFlight;
    },
    get requests() {
      return requests;
    },
    intervals,
    reset() {
      maxInFlight = inFlight;
      requests = 0;
      intervals.length = 0;
    },
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve(undefined));
        for (const socket of sockets) socket.destroy();
      }),
  };
}

const fmtMs = (/** @type {number} */ ms) =>
  Number.isFinite(ms) ? (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`) : "–";
const fmtUs = (/** @type {number} */ us) =>
  Number.isFinite(us) ? (us >= 1000 ? fmtMs(us / 1000) : `${us.toFixed(us < 10 ? 1 : 0)} µs`) : "–";
const fmtRatio = (/** @type {number} */ r) => (Number.isFinite(r) ? `${r.toFixed(2)}×` : "–");
const label = (/** @type {string} */ backend) => (backend === "redis" ? "keyv + redis" : backend);
const load = () =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(" ");

/**
 * How many attempts one process's backoff schedule allows in `durationMs`, attempts taking
 * no time: the first at once, the next `backoffMs(n)` after the n-th failure. `random` 0 is
 * the shortest jitter (most attempts), close to 1 the longest.
 */
export function scheduleAttempts(/** @type {number} */ durationMs, /** @type {number} */ random) {
  const policy = /** @type {import("@credcache/core").RefreshPolicy} */ ({
    retryBaseMs: REFRESH_DEFAULTS.retryBaseMs,
    retryMaxMs: REFRESH_DEFAULTS.retryMaxMs,
  });
  let at = 0;
  let attempts = 0;
  while (at < durationMs && attempts < 1_000) {
    attempts += 1;
    at += backoffMs(attempts, policy, () => random);
  }
  return attempts;
}

/** Reads what a new process would find in the store: the record and the refresh state. */
async function peek(/** @type {string} */ url, /** @type {string} */ key) {
  const cache = await createCache(url);
  try {
    const parsed = parseRecord(await cache.get(key));
    const state = parseRefreshState(await cache.get(refreshStateKey(key)));
    return { record: parsed.ok ? parsed.record : undefined, state };
  } finally {
    await cache.close?.();
  }
}

/**
 * @typedef {object} Context
 * @property {Record<string, any>} flags
 * @property {(backend: string) => string} freshStore
 * @property {(list: string) => string[]} pickBackends
 * @property {(text?: string) => void} say
 * @property {Array<{ what: string, ok: boolean, got: string, info?: boolean }>} targets
 * @property {Set<string>} imdsUrls emulator (and proxy) URLs whose keys the run wrote, for clean-up
 */

// ---------------------------------------------------------------- cold herd, SDK defaults

/** @param {Context} ctx */
async function coldSdk(ctx) {
  const { flags, say, targets } = ctx;
  const n = Number(flags["herd-size"]);
  const hogCount = Number(flags.hogs);
  const backends = ctx.pickBackends(flags["scenario-backends"]);
  const configs = [
    { backend: "none", provider: "sdk-defaults", name: "SDK alone: fromInstanceMetadata()" },
    ...backends.map((b) => ({
      backend: b,
      provider: "sdk-defaults",
      name: `fromCache(SDK defaults), ${label(b)}`,
    })),
    ...backends.map((b) => ({ backend: b, provider: "preset", name: `preset, ${label(b)}` })),
  ];
  /** @type {Array<Record<string, any>>} */
  const rows = [];
  for (const hogs of hogCount > 0 ? [0, hogCount] : [0]) {
    const hogProcs = startHogs(hogs);
    const imds = await startImdsEmulator();
    ctx.imdsUrls.add(imds.url);
    try {
      if (hogs) await sleep(1_000); // let the hogs take the CPUs first
      for (const config of configs) {
        process.stderr.write(`cold-sdk: ${n} × ${config.name}${hogs ? `, ${hogs} CPU hogs` : ""}...\n`);
        imds.resetStats();
        const store = ctx.freshStore(config.backend);
        const { reports, ok, outcome } = await runHerd({
          n,
          store,
          provider: config.provider,
          endpoint: imds.url,
          capMs: 180_000,
        });
        const cpu = ok.map((r) => r.cpuMs);
        const stats = imds.stats;
        rows.push({
          ...config,
          hogs,
          fetches: stats.credentialFetches,
          attempts: stats.requests.credentials + stats.requests.extended,
          tokens: stats.requests.token,
          ...outcome,
          cpu50: percentile(cpu, 50),
          cpu99: percentile(cpu, 99),
          reasons: tallyEvents(
            reports,
            (e) => e.startsWith("refresh-start") || e.startsWith("lock-waited:timeout"),
          ),
          // What the children saw go wrong: store calls that failed or timed out, failed
          // attempts (with the source's error), lock waits; cut to the first 60 characters.
          trouble: tallyShortEvents(reports, ["cache-error", "refresh-failure", "lock-waited", "extended"]),
          load: loadavg()[0] ?? 0,
        });
      }
    } finally {
      await stopHogs(hogProcs);
      await imds.close();
    }
  }

  say(`## Cold herd of ${n}: the SDK's defaults and the preset, beside the SDK alone`);
  say("");
  say(
    `${n} processes start at once on an empty store. "SDK defaults" = \`fromCache({ provider: fromInstanceMetadata(), cache })\` ` +
      "(1 s timeout, 0 retries); preset = `fromCachedInstanceMetadata({ cache })`. Successful fetches = credential documents " +
      "the emulator served; attempts = credential requests it received; token PUTs shown too (a request that timed out at " +
      "the token step never reaches the credentials). Time to first credential counts from process start (node start-up " +
      "included); CPU = the process's user + system time up to its first credential. Ratios are to the SDK alone's p99 in " +
      `the same block. With hogs: ${hogCount} busy-loop processes started 1 s before the herd and killed after it.`,
  );
  say("");
  for (const hogs of [...new Set(rows.map((r) => r.hogs))]) {
    const block = rows.filter((r) => r.hogs === hogs);
    const base = block.find((r) => r.backend === "none");
    if (hogs) say(`With ${hogs} CPU hogs beside the herd:`);
    else say("Quiet (only the machine's other work):");
    say("");
    say(
      markdownTable(
        [
          "provider",
          "successful fetches",
          "attempts",
          "token PUTs",
          "failed",
          "first credential p50",
          "p99",
          "p99 / SDK alone",
          "CPU to first credential p50",
          "CPU p99",
          "load (1 min)",
        ],
        block.map((r) => [
          r.name,
          String(r.fetches),
          String(r.attempts),
          String(r.tokens),
          `${r.failed} of ${n}`,
          fmtMs(r.p50),
          fmtMs(r.p99),
          r === base ? "1.00×" : fmtRatio(r.p99 / (base?.p99 ?? Number.NaN)),
          fmtMs(r.cpu50),
          fmtMs(r.cpu99),
          r.load.toFixed(1),
        ]),
      ),
    );
    say("");
    for (const r of block) {
      if (r.errors.length) say(`- ${r.name}${hogs ? ` (hogs)` : ""}: failures: ${r.errors.join(" / ")}`);
      if (r.backend !== "none" && (r.fetches > 1 || r.attempts > 1)) {
        say(`- ${r.name}${hogs ? ` (hogs)` : ""}: fetch reasons: ${showTally(r.reasons)}`);
      }
      if (r.backend !== "none" && (r.failed > 0 || r.fetches > 1)) {
        say(`- ${r.name}${hogs ? ` (hogs)` : ""}: events: ${showTally(r.trouble)}`);
      }
    }
    say("");
    for (const r of block) {
      if (r.backend === "none") {
        targets.push({
          what: `cold-sdk${hogs ? ` + ${hogs} hogs` : ""}, SDK alone: processes failed (baseline)`,
          ok: r.failed === 0,
          got: `${r.failed} of ${n}`,
          info: true,
        });
        continue;
      }
      const where = `cold-sdk${hogs ? ` + ${hogs} hogs` : ""}, ${r.name}`;
      if (hogs) {
        targets.push({
          what: `${where}: 0 failed, 1 successful fetch (attempts reported)`,
          ok: r.failed === 0 && r.fetches === 1,
          got: `${r.failed} failed, ${r.fetches} fetches, ${r.attempts} attempts`,
        });
      } else {
        targets.push({
          what: `${where}: ≤ 1 fetch, ≤ 3 attempts, 0 failed, p99 ≤ SDK alone's p99`,
          ok:
            r.fetches <= 1 &&
            r.attempts <= 3 &&
            r.failed === 0 &&
            r.p99 <= (base?.p99 ?? Number.POSITIVE_INFINITY),
          got: `${r.fetches} fetches, ${r.attempts} attempts, ${r.failed} failed, p99 ${fmtMs(r.p99)} vs ${fmtMs(base?.p99 ?? Number.NaN)}`,
        });
      }
    }
  }
}

// ---------------------------------------------------------------- cold herd, IMDS hangs 6 s

/**
 * A cold herd while IMDS's credential route hangs for the first 6 s (SDK defaults: 1 s
 * timeout, 0 retries). The lock holder's tries time out; it must then wait, like every
 * other caller, for the next shared attempt instead of failing (issue 20, behaviour
 * change 1). Requests are counted where IMDS sees them (a counting proxy).
 * @param {Context} ctx
 */
async function hang6s(ctx) {
  const { flags, say, targets } = ctx;
  const n = Number(flags["herd-size"]);
  const hangMs = 6_000;
  const backends = ctx.pickBackends(flags["outage-backend"]);
  for (const backend of backends) {
    const imds = await startImdsEmulator();
    const proxy = await countingProxy(imds.url);
    ctx.imdsUrls.add(proxy.url);
    try {
      process.stderr.write(
        `hang6s: ${n} × fromCache(SDK defaults), ${label(backend)}, credentials hang ${hangMs} ms...\n`,
      );
      const store = ctx.freshStore(backend);
      imds.setFaults({ credentials: { hang: true } });
      const started = performance.now();
      // The 6 s count from the herd's first request at IMDS: on a loaded machine node
      // start-up alone can take longer than the hang.
      /** @type {NodeJS.Timeout | undefined} */
      let healed;
      const watch = setInterval(() => {
        if (proxy.requests === 0) return;
        clearInterval(watch);
        healed = setTimeout(() => imds.setFaults(undefined), hangMs);
      }, 10);
      const { reports, outcome } = await runHerd({
        n,
        store,
        provider: "sdk-defaults",
        endpoint: proxy.url,
        capMs: 120_000,
      });
      clearInterval(watch);
      clearTimeout(healed);
      imds.setFaults(undefined);
      const wallMs = performance.now() - started;
      const row = {
        backend,
        ...outcome,
        fetches: imds.stats.credentialFetches,
        credentialRequests: imds.stats.requests.credentials,
        requests: proxy.requests,
        inFlight: proxy.maxInFlight,
        wallMs,
        trouble: tallyShortEvents(reports, [
          "refresh-failure",
          "lock-waited",
          "refresh-start",
          "state-ignored",
        ]),
      };
      say(`## Cold herd of ${n} while IMDS's credential route hangs ${hangMs / 1000} s (${label(backend)})`);
      say("");
      say(
        `${n} processes start at once on an empty store, \`fromCache({ provider: fromInstanceMetadata(), cache })\` (SDK ` +
          `defaults: 1 s timeout, 0 retries); the emulator leaves every credential request unanswered for ` +
          `${hangMs / 1000} s from the herd's first request, then answers. Requests and requests in flight at once are counted by a proxy in front of IMDS.`,
      );
      say("");
      say(
        markdownTable(
          [
            "store",
            "got credentials",
            "successful fetches",
            "credential requests",
            "all IMDS requests",
            "in flight at once",
            "first credential p50",
            "p99",
            "wall",
          ],
          [
            [
              label(backend),
              `${n - row.failed} of ${n}`,
              String(row.fetches),
              String(row.credentialRequests),
              String(row.requests),
              String(row.inFlight),
              fmtMs(row.p50),
              fmtMs(row.p99),
              fmtMs(row.wallMs),
            ],
          ],
        ),
      );
      say("");
      if (row.errors.length) say(`- failures: ${row.errors.join(" / ")}`);
      say(`- events: ${showTally(row.trouble)}`);
      say("");
      targets.push({
        what: `hang6s, ${label(backend)}: ${n} of ${n} get credentials, ≤ 1 request in flight at IMDS`,
        ok: row.failed === 0 && row.inFlight <= 1,
        got: `${n - row.failed} of ${n}, ${row.inFlight} in flight, ${row.credentialRequests} credential requests`,
      });
    } finally {
      await proxy.close();
      await imds.close();
    }
  }
}

/**
 * Starts a herd of `n` children on one store and one IMDS endpoint and waits for all of
 * them: their JSON reports, the reports of those that got credentials, and the outcome
 * (how many failed, the first two distinct errors, time to first credential).
 */
async function runHerd({ n, store, provider, endpoint, capMs }) {
  const env = { HERD_CACHE_URL: store, HERD_PROVIDER: provider, AWS_EC2_METADATA_SERVICE_ENDPOINT: endpoint };
  const results = await Promise.all(Array.from({ length: n }, () => run([HERD_CHILD], env, capMs).done));
  const reports = results.map((r) => lastJson(r.lines));
  const ok = reports.filter((r, i) => results[i]?.code === 0 && r?.ok);
  const ttfc = ok.map((r) => r.ttfcMs);
  return {
    reports,
    ok,
    outcome: {
      failed: n - ok.length,
      errors: [...new Set(reports.filter((r) => !r?.ok).map((r) => r?.error ?? "no report"))].slice(0, 2),
      p50: percentile(ttfc, 50),
      p99: percentile(ttfc, 99),
    },
  };
}

/**
 * An IMDS emulator the run tracks, the environment that points the SDK at it, the cache
 * key its instance gets, and a fresh store of `backend`.
 */
async function emulatorAndStore(ctx, /** @type {string} */ backend, emulatorOptions = {}) {
  const imds = await startImdsEmulator(emulatorOptions);
  ctx.imdsUrls.add(imds.url);
  const env = { AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url };
  return { imds, env, key: instanceMetadataKey({ env }), cache: ctx.freshStore(backend) };
}

/** Tallies event strings the herd children logged. */
function tallyEvents(/** @type {any[]} */ reports, /** @type {(e: string) => boolean} */ keep) {
  /** @type {Record<string, number>} */
  const counts = {};
  for (const r of reports) {
    for (const e of r?.events ?? []) {
      if (typeof e === "string" && keep(e)) {
        const name = e.replace(/^refresh-start:/, "");
        counts[name] = (counts[name] ?? 0) + 1;
      }
    }
  }
  return counts;
}
/**
 * Tallies the events that start with one of `prefixes`, each cut to its first 60
 * characters (what went wrong, not the whole error).
 */
const tallyShortEvents = (/** @type {any[]} */ reports, /** @type {string[]} */ prefixes) =>
  tallyEvents(
    reports.map((r) => ({ events: (r?.events ?? []).map((e) => String(e).slice(0, 60)) })),
    (e) => prefixes.some((prefix) => e.startsWith(prefix)),
  );
const showTally = (/** @type {Record<string, number>} */ t) =>
  Object.entries(t)
    .map(([k, v]) => `${k} ${v}`)
    .join(", ") || "–";

// ---------------------------------------------------------------- outage in the refresh window

const OUTAGE_FAULTS = {
  hang: { any: { hang: /** @type {const} */ (true) } },
  500: { any: { status: 500 } },
  429: { any: { status: 429 } },
};

/** One `credcache process` run; its wait is from spawn to exit, as botocore and the JS SDK wait. */
async function cliRun(/** @type {string} */ cache, /** @type {string} */ endpoint) {
  const child = run(
    [CLI, "process", "--source", "imds", "--cache", cache],
    { AWS_EC2_METADATA_SERVICE_ENDPOINT: endpoint },
    60_000,
  );
  const r = await child.done;
  let accessKeyId;
  try {
    accessKeyId = JSON.parse(r.stdout).AccessKeyId;
  } catch {
    accessKeyId = undefined;
  }
  return {
    ok: r.code === 0,
    accessKeyId,
    answerMs: r.firstOutputMs,
    exitMs: r.exitMs,
    warning: r.stderr.split("\n").find(Boolean)?.slice(0, 200),
    warningLines: r.stderr.split("\n").filter(Boolean).length,
  };
}

/** A set with `leftMs` to live, written straight into the store as fromCache would have written it. */
async function plant(/** @type {string} */ url, /** @type {string} */ key, /** @type {number} */ leftMs) {
  const now = Date.now();
  const identity = {
    accessKeyId: `ASIAPLANTED${randomBytes(5).toString("hex").toUpperCase()}`.slice(0, 20),
    secretAccessKey: randomBytes(30).toString("base64"),
    sessionToken: randomBytes(60).toString("base64"),
    expiration: new Date(now + leftMs),
  };
  const record = toRecord(identity, now - 6 * 60 * MINUTE + leftMs, "imds", key);
  const cache = await createCache(url);
  try {
    await cache.set(key, { ...record }, Math.ceil((leftMs + REFRESH_DEFAULTS.keepExpiredMs) / 1000));
  } finally {
    await cache.close?.();
  }
  return identity.accessKeyId;
}

/**
 * Runs `count` callers side by side for `durationMs`: half long-running fromCache processes,
 * half loops of `credcache process` runs. Resolves with everything they reported.
 */
async function callers(ctx, { cache, endpoint, durationMs, count, cliPauseMs }) {
  const untilMs = Date.now() + durationMs;
  const longRunning = Math.ceil(count / 2);
  const cliSlots = count - longRunning;
  const procs = Array.from(
    { length: longRunning },
    () =>
      run(
        [
          SCENARIO_CHILD,
          JSON.stringify({ mode: "caller", cache, untilMs, everyMs: Number(ctx.flags["caller-every-ms"]) }),
        ],
        { AWS_EC2_METADATA_SERVICE_ENDPOINT: endpoint },
        durationMs + 60_000,
      ).done,
  );
  const cliRuns = [];
  const slots = Array.from({ length: cliSlots }, async (_, slot) => {
    // Spread the slots' first runs over one pause.
    await sleep((slot * cliPauseMs) / cliSlots);
    for (let i = 0; i < 1_000 && Date.now() < untilMs; i++) {
      cliRuns.push(await cliRun(cache, endpoint));
      await sleep(cliPauseMs * (0.5 + Math.random()));
    }
  });
  const [procResults] = await Promise.all([Promise.all(procs), Promise.all(slots)]);
  return {
    processes: procResults.map((r) => lastJson(r.lines) ?? { ok: false, error: r.stderr.slice(0, 200) }),
    cliRuns,
  };
}

/** Attempts in flight at once, from the children's refresh-start / -success / -failure events. */
function maxOverlap(/** @type {any[]} */ processes) {
  /** @type {Array<[number, number]>} */
  const edges = [];
  for (const p of processes) {
    let open;
    for (const e of p?.events ?? []) {
      if (e.type === "refresh-start" && open === undefined) open = e.time;
      if (
        (e.type === "refresh-success" || e.type === "refresh-failure" || e.type === "extended") &&
        open !== undefined
      ) {
        edges.push([open, 1], [e.time, -1]);
        open = undefined;
      }
    }
  }
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let max = 0;
  for (const [, d] of edges) {
    now += d;
    max = Math.max(max, now);
  }
  return max;
}

/** What a set of callers got: call waits, CLI runs (answer and exit), failures. */
function answers(/** @type {{ processes: any[], cliRuns: any[] }} */ result) {
  const calls = result.processes.flatMap((p) => p.waitsUs ?? []);
  const cliOk = result.cliRuns.filter((r) => r.ok);
  const exits = cliOk.map((r) => r.exitMs);
  return {
    cliOk,
    calls: calls.length,
    callP50: percentile(calls, 50),
    callP99: percentile(calls, 99),
    cliRuns: result.cliRuns.length,
    cliAnswer99: percentile(
      cliOk.map((r) => r.answerMs),
      99,
    ),
    cliP50: percentile(exits, 50),
    cliP99: percentile(exits, 99),
    failed:
      result.processes.reduce((n, proc) => n + (proc.failures ?? (proc.ok ? 0 : 1)), 0) +
      (result.cliRuns.length - cliOk.length),
  };
}

/** @param {Context} ctx */
async function outage(ctx) {
  const { flags, say, targets } = ctx;
  const durationMs = Number(flags["outage-seconds"]) * 1000;
  const count = Number(flags["outage-callers"]);
  const cliPauseMs = Number(flags["cli-pause-ms"]);
  const leftMs = 10 * MINUTE;
  const backend = ctx.pickBackends(flags["outage-backend"])[0] ?? "file";
  const faults = String(flags["outage-faults"]).split(",");
  const imds = await startImdsEmulator();
  const proxy = await countingProxy(imds.url);
  ctx.imdsUrls.add(proxy.url);
  const key = instanceMetadataKey({ env: { AWS_EC2_METADATA_SERVICE_ENDPOINT: proxy.url } });
  const rows = [];
  try {
    // Warm answers, same run: a fresh set in the store, IMDS healthy, the same callers.
    process.stderr.write(`outage: warm answers (${backend})...\n`);
    const warmStore = ctx.freshStore(backend);
    await cliRun(warmStore, proxy.url); // fills the store
    const warm = await callers(ctx, {
      cache: warmStore,
      endpoint: proxy.url,
      durationMs: Math.min(20_000, durationMs),
      count,
      cliPauseMs,
    });
    const warmRow = {
      fault: "none (warm: fresh set, IMDS healthy)",
      ...answers(warm),
      other: 0,
      attempts: Number.NaN,
      requests: Number.NaN,
      inFlight: Number.NaN,
      eventsInFlight: Number.NaN,
    };
    rows.push(warmRow);

    for (const fault of faults) {
      const faultSpec = OUTAGE_FAULTS[/** @type {keyof typeof OUTAGE_FAULTS} */ (fault)];
      if (!faultSpec) throw new Error(`unknown outage fault "${fault}"; use hang, 500 or 429`);
      process.stderr.write(`outage: ${fault} for ${durationMs / 1000} s, ${count} callers (${backend})...\n`);
      const store = ctx.freshStore(backend);
      const planted = await plant(store, key, leftMs);
      imds.setFaults(faultSpec);
      imds.resetStats();
      proxy.reset();
      // The shared failure count is the number of failed attempts every process recorded.
      let maxFailures = 0;
      let watching = true;
      const watcher = (async () => {
        const cache = await createCache(store);
        try {
          while (watching) {
            const state = parseRefreshState(await cache.get(refreshStateKey(key)).catch(() => undefined));
            maxFailures = Math.max(maxFailures, state?.failures ?? 0);
            await sleep(200);
          }
        } finally {
          await cache.close?.();
        }
      })();
      const t0 = Date.now();
      const result = await callers(ctx, { cache: store, endpoint: proxy.url, durationMs, count, cliPauseMs });
      watching = false;
      await watcher;
      const elapsed = Date.now() - t0;
      const maxInFlight = proxy.maxInFlight;
      const requests = proxy.requests;
      imds.setFaults(undefined);
      const summary = answers(result);
      const cliOk = summary.cliOk;
      const other =
        result.processes.reduce(
          (n, p) =>
            n +
            Object.entries(p.served ?? {})
              .filter(([id]) => id !== planted)
              .reduce((s, [, c]) => s + c, 0),
          0,
        ) + cliOk.filter((r) => r.accessKeyId !== planted).length;
      const starts = result.processes.flatMap((p) =>
        (p.events ?? []).filter((e) => e.type === "refresh-start"),
      );
      rows.push({
        fault,
        elapsed,
        ...summary,
        cliSlow: cliOk.filter((r) => r.exitMs > 2 * warmRow.cliP99).length,
        // A run that answered, then stayed: its close() waits for the refresh it started behind.
        cliStayed: cliOk.filter((r) => r.exitMs - r.answerMs > 1_000).length,
        cliStayMax: Math.max(0, ...cliOk.map((r) => r.exitMs - r.answerMs)),
        failures: [
          ...new Set([
            ...result.processes.flatMap((p) => p.errors ?? (p.error ? [p.error] : [])),
            ...result.cliRuns.filter((r) => !r.ok).map((r) => r.warning ?? "exit non-zero"),
          ]),
        ].slice(0, 3),
        other,
        attempts: maxFailures,
        processStarts: starts.length,
        requests,
        emulatorRequests: imds.stats.requests.total,
        inFlight: maxInFlight,
        eventsInFlight: maxOverlap(result.processes),
        scheduleMax: scheduleAttempts(elapsed, 0),
        scheduleMin: scheduleAttempts(elapsed, 0.999_999),
      });
    }
  } finally {
    await proxy.close();
    await imds.close();
  }

  const warmRow = rows[0];
  say("## Outage inside the refresh window");
  say("");
  say(
    `A set with ${leftMs / MINUTE} min left is written into a ${label(backend)} store, then every IMDS route ${faults.map((f) => (f === "hang" ? "hangs" : `answers ${f}`)).join(" (then, separately, ")}${faults.length > 1 ? ")" : ""} ` +
      `for ${durationMs / 1000} s of real time: the windows and the backoff are the shipped defaults (REFRESH_DEFAULTS for fromCache, ` +
      `PROCESS_DEFAULTS for \`credcache process\`, whose windows are not adjustable), so time is not compressed; the outage is shortened instead, and ` +
      `the whole of it lies inside the mandatory window (and above the CLI's ${PROCESS_DEFAULTS.minValidityMs / MINUTE} min floor). ` +
      `${count} callers ask throughout: ${Math.ceil(count / 2)} long-running processes (the preset, one call every ~${flags["caller-every-ms"]} ms) and ` +
      `${count - Math.ceil(count / 2)} loops of \`credcache process --source imds\` (one run every ~${cliPauseMs} ms each). ` +
      "A call's wait is the time `await provider()` took in a long-running process; a CLI run's wait is spawn to exit (botocore and the JS SDK wait for the exit), " +
      "its answer is spawn to its JSON on stdout. The warm row is the same callers against a fresh set with IMDS healthy, in the same run. " +
      "Attempts = failed attempts recorded in the shared refresh state (its failure count); the schedule is one process's backoff " +
      `(core's backoffMs, retryBaseMs ${REFRESH_DEFAULTS.retryBaseMs} ms doubling to ${REFRESH_DEFAULTS.retryMaxMs} ms, 50–100% jitter) over the same time, ` +
      "shortest to longest jitter, attempts taking no time. In flight = requests open at IMDS at once (a counting proxy in front of the emulator), " +
      "and attempts open at once by the long-running processes' refresh-start/-failure events.",
  );
  say("");
  say(
    markdownTable(
      [
        "IMDS",
        "calls",
        "call wait p50",
        "p99",
        "p99 / warm",
        "CLI runs",
        "CLI answer p99",
        "CLI exit p50",
        "exit p99",
        "exit p99 / warm",
        "failed",
        "other set served",
        "attempts",
        "schedule allows",
        "IMDS requests",
        "max in flight (IMDS / events)",
      ],
      rows.map((r) => [
        r.fault,
        String(r.calls),
        fmtUs(r.callP50),
        fmtUs(r.callP99),
        r === warmRow ? "1.00×" : fmtRatio(r.callP99 / warmRow.callP99),
        String(r.cliRuns),
        fmtMs(r.cliAnswer99),
        fmtMs(r.cliP50),
        fmtMs(r.cliP99),
        r === warmRow ? "1.00×" : fmtRatio(r.cliP99 / warmRow.cliP99),
        String(r.failed),
        String(r.other),
        Number.isFinite(r.attempts) ? String(r.attempts) : "–",
        r === warmRow ? "–" : `${r.scheduleMin}–${r.scheduleMax}`,
        Number.isFinite(r.requests) ? String(r.requests) : "–",
        r === warmRow ? "–" : `${r.inFlight} / ${r.eventsInFlight}`,
      ]),
    ),
  );
  say("");
  for (const r of rows.slice(1)) {
    if (r.failures.length) say(`- ${r.fault}: failures: ${r.failures.join(" / ")}`);
    if (r.cliSlow)
      say(`- ${r.fault}: ${r.cliSlow} of ${r.cliRuns} CLI runs took more than 2× the warm p99 to exit`);
    if (r.cliStayed) {
      say(
        `- ${r.fault}: ${r.cliStayed} of ${r.cliRuns} CLI runs stayed more than 1 s after printing their answer ` +
          `(longest ${fmtMs(r.cliStayMax)}): the run that starts the refresh behind waits for it in close() before it exits`,
      );
    }
  }
  say("");
  for (const r of rows.slice(1)) {
    const where = `outage (${r.fault}, ${label(backend)})`;
    targets.push({
      what: `${where}: every caller answered from the cached set`,
      ok: r.failed === 0 && r.other === 0,
      got: `${r.failed} failed, ${r.other} served another set, of ${r.calls} calls and ${r.cliRuns} CLI runs`,
    });
    targets.push({
      what: `${where}: long-running call wait p99 ≤ 2× warm`,
      ok: r.callP99 <= 2 * warmRow.callP99,
      got: `${fmtUs(r.callP99)} vs warm ${fmtUs(warmRow.callP99)} (${fmtRatio(r.callP99 / warmRow.callP99)})`,
    });
    targets.push({
      what: `${where}: CLI run wait (to exit) p99 ≤ 2× warm`,
      ok: r.cliP99 <= 2 * warmRow.cliP99,
      got: `${fmtMs(r.cliP99)} vs warm ${fmtMs(warmRow.cliP99)} (${fmtRatio(r.cliP99 / warmRow.cliP99)}); answer p99 ${fmtMs(r.cliAnswer99)}`,
    });
    targets.push({
      what: `${where}: attempts ≤ one process's backoff schedule`,
      ok: r.attempts <= r.scheduleMax,
      got: `${r.attempts} attempts, schedule allows ${r.scheduleMin}–${r.scheduleMax} in ${(r.elapsed / 1000).toFixed(0)} s; ${r.requests} IMDS requests`,
    });
    targets.push({
      what: `${where}: never more than one attempt in flight`,
      ok: r.inFlight <= 1 && r.eventsInFlight <= 1,
      got: `${r.inFlight} requests open at IMDS at once, ${r.eventsInFlight} attempts open at once (events)`,
    });
  }
  return rows;
}

// ---------------------------------------------------------------- paused holder

/** "T" when the process is stopped (Linux /proc). */
function stateOf(/** @type {number | undefined} */ pid) {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0];
  } catch {
    return undefined;
  }
}

/** @param {Context} ctx */
async function paused(ctx) {
  const { flags, say, targets } = ctx;
  const lockTtlMs = Number(flags["paused-lock-ttl-ms"]);
  const rows = [];
  for (const backend of ctx.pickBackends(flags["scenario-backends"])) {
    process.stderr.write(`paused: ${backend}...\n`);
    const { imds, env, key, cache } = await emulatorAndStore(ctx, backend);
    const row = {
      backend,
      older: "",
      newer: "",
      successor: "",
      holder: "",
      stored: "",
      later: /** @type {string[]} */ ([]),
      note: "",
    };
    try {
      const holder = run(
        [SCENARIO_CHILD, JSON.stringify({ mode: "paused-holder", cache, lockTtlMs })],
        env,
        120_000,
      );
      const fetched = await waitLine(holder, (l) => l?.t === "fetched", 60_000);
      row.older = fetched.accessKeyId;
      const stopped = await until(() => stateOf(holder.proc.pid) === "T", 5_000);
      if (!stopped) row.note = "the holder did not stop";
      // Its lease runs out; a second passes so the next set expires later (EC2 times are whole seconds).
      await sleep(lockTtlMs + 1_200);
      row.newer = imds.rotate().accessKeyId;
      const successor = await run(
        [SCENARIO_CHILD, JSON.stringify({ mode: "once", cache, lockTtlMs })],
        env,
        60_000,
      ).done;
      const s = lastJson(successor.lines);
      row.successor = s?.accessKeyId ?? `error: ${s?.error ?? successor.stderr.slice(0, 100)}`;
      holder.proc.kill("SIGCONT");
      const h = lastJson((await holder.done).lines);
      row.holder = h?.accessKeyId ?? `error: ${h?.error ?? "no report"}`;
      row.stored = (await peek(cache, key)).record?.accessKeyId ?? "nothing";
      const later = await Promise.all(
        Array.from(
          { length: 3 },
          () => run([SCENARIO_CHILD, JSON.stringify({ mode: "once", cache, lockTtlMs })], env, 60_000).done,
        ),
      );
      row.later = later.map((r) => lastJson(r.lines)?.accessKeyId ?? "error");
    } finally {
      await imds.close();
    }
    rows.push(row);
  }
  const short = (/** @type {string} */ id) => (id?.startsWith("ASIA") ? `${id.slice(0, 8)}…` : id);
  say("## Paused holder");
  say("");
  say(
    `A process takes the lock (lockTtlMs ${lockTtlMs}), fetches the older set, and is SIGSTOPped before fromCache writes it. ` +
      "After its lease runs out the emulator rotates (a newer set, expiring later) and a successor process refreshes; then the holder is " +
      "SIGCONTed and finishes; then 3 later processes start. Access key ids are truncated.",
  );
  say("");
  say(
    markdownTable(
      [
        "store",
        "older (holder's fetch)",
        "newer (after rotation)",
        "successor got",
        "holder resumed, got",
        "store holds",
        "later processes got",
      ],
      rows.map((r) => [
        label(r.backend),
        short(r.older),
        short(r.newer),
        short(r.successor),
        short(r.holder),
        short(r.stored),
        r.later.map(short).join(", "),
      ]),
    ),
  );
  say("");
  for (const r of rows) {
    if (r.note) say(`- ${label(r.backend)}: ${r.note}`);
    targets.push({
      what: `paused holder, ${label(r.backend)}: the store keeps the newer set, no later process gets the older`,
      ok: r.stored === r.newer && r.later.length > 0 && r.later.every((id) => id === r.newer),
      got: `store ${r.stored === r.newer ? "newer" : r.stored === r.older ? "OLDER" : r.stored}; later: ${r.later.map((id) => (id === r.newer ? "newer" : id === r.older ? "OLDER" : id)).join(", ")}`,
    });
  }
}

// ---------------------------------------------------------------- extended set

/** @param {Context} ctx */
async function extended(ctx) {
  const { flags, say, targets } = ctx;
  const rows = [];
  for (const backend of ctx.pickBackends(flags["scenario-backends"])) {
    for (const first of ["preset", "credcache process"]) {
      process.stderr.write(`extended: ${backend}, first ${first}...\n`);
      const { imds, env, key, cache } = await emulatorAndStore(ctx, backend, {
        faults: { credentials: { expired: true, count: 1 } },
      });
      const row = {
        backend,
        first,
        firstGot: "",
        warnings: 0,
        stored: "",
        next: "",
        nextFetched: false,
        nextValid: false,
      };
      try {
        if (first === "preset") {
          const r = lastJson((await run([HERD_CHILD], { ...env, HERD_CACHE_URL: cache }, 60_000).done).lines);
          const extendedEvent = (r?.events ?? []).some((e) => String(e).startsWith("extended"));
          row.firstGot = r?.ok
            ? extendedEvent
              ? "extended set (event)"
              : "a set, no extended event"
            : `error: ${r?.error}`;
        } else {
          const r = await cliRun(cache, imds.url);
          const child = r;
          row.firstGot = child.ok ? "exit 0" : `exit non-zero: ${child.warning}`;
          row.warnings = child.warningLines;
          row.firstGot += child.warning
            ? `, ${child.warningLines} stderr line(s): "${child.warning.slice(0, 90)}…"`
            : ", no warning";
        }
        const { record, state } = await peek(cache, key);
        row.stored = record
          ? record.expiration !== undefined && record.expiration > Date.now()
            ? "FRESH record"
            : "expired record"
          : `nothing${state ? ` (refresh state: ${state.failures} failure)` : ""}`;
        const before = imds.stats.credentialFetches;
        const next = lastJson(
          (await run([HERD_CHILD], { ...env, HERD_CACHE_URL: cache }, 60_000).done).lines,
        );
        row.nextFetched = imds.stats.credentialFetches > before;
        row.nextValid = Boolean(next?.ok && next.expiration > Date.now() + 60 * MINUTE);
        row.next = next?.ok
          ? `${row.nextFetched ? "fetched" : "did not fetch"}, ${row.nextValid ? "valid for hours" : "NOT valid"}, first credential after ${fmtMs(next.ttfcMs)}`
          : `error: ${next?.error}`;
      } finally {
        await imds.close();
      }
      rows.push(row);
    }
  }
  say("## Extended set");
  say("");
  say(
    "The emulator serves one expired set (fault `credentials: { expired: true, count: 1 }`); the SDK's static stability extends it. " +
      "The first process is the preset (fromCachedInstanceMetadata) or a `credcache process` run; the store is then read directly; " +
      "then the next process (the preset, IMDS healthy) resolves.",
  );
  say("");
  say(
    markdownTable(
      ["store", "first process", "it got", "store then holds", "next process"],
      rows.map((r) => [label(r.backend), r.first, r.firstGot, r.stored, r.next]),
    ),
  );
  say("");
  for (const r of rows) {
    targets.push({
      what: `extended set, ${label(r.backend)}, first ${r.first}: never stored as fresh; the next process fetches a valid set`,
      ok: !r.stored.startsWith("FRESH") && r.nextFetched && r.nextValid,
      got: `store: ${r.stored}; next: ${r.next}`,
    });
  }
}

/**
 * Runs the named scenarios in order.
 * @param {string[]} names
 * @param {Context} ctx
 */
export async function runScenarios(names, ctx) {
  const steps = { "cold-sdk": coldSdk, outage, paused, extended, hang6s };
  try {
    for (const name of names) {
      ctx.say(`<!-- load average ${load()} before ${name} -->`);
      await steps[/** @type {keyof typeof steps} */ (name)](ctx);
    }
  } finally {
    for (const proc of live) proc.kill("SIGKILL");
  }
}
