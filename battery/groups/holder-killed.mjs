// Holder killed (fault 1): a process is kill -9'ed while it holds the refresh lock, caught
// mid-fetch by an emulator that hangs its credentials request. Every other process still
// gets credentials within lockTtl + 1 s, none gets an error, and exactly one of them fetches.
// 20 kills over the fs, sqlite and keyv+redis stores; real processes, the real SDK provider.
// Mixed callers: a `credcache process` run waits beside the fromCache processes in every round
// and gets the same credentials (it is not held to lockTtl + 1 s: its node start-up counts).
// Failed holder: a holder whose fetch fails records a shared backoff; the processes and the
// `credcache process` run waiting on it do not ask the failing source before that backoff ends.

import { join } from "node:path";
import { instanceMetadataKey, parseRefreshState, refreshStateKey } from "@credcache/core";
import { startImdsEmulator } from "@credcache/imds-emulator";
import { expect, sha, sleep, startGroup, waitUntil } from "../harness.mjs";
import { openStore, REDIS_URL } from "../stores.mjs";

const g = startGroup("holder-killed");
const LOCK_TTL_MS = 1500;
const WORKERS = 4;
const ROUNDS = { fs: 7, sqlite: 7, "keyv+redis": 6 };
const dir = g.tmp("stores", { mode: 0o700 });

const specs = {
  fs: { kind: "fs", dir: join(dir, "fs") },
  sqlite: { kind: "sqlite", path: join(dir, "cache.db") },
  "keyv+redis": { kind: "redis", url: REDIS_URL, namespace: `battery-holder-${g.runId}` },
};
/** The same stores as `credcache process --cache` URLs. */
const urls = {
  fs: `file://${specs.fs.dir}`,
  sqlite: `sqlite://${specs.sqlite.path}`,
  "keyv+redis": `${REDIS_URL}?namespace=${specs["keyv+redis"].namespace}`,
};

let nextId = 0;

/** Mixed callers: each resolver process asks for `key`, and one `credcache process` run starts. */
function askAll(resolvers, key, label, env) {
  const ids = resolvers.map((w) => {
    const id = ++nextId;
    w.send({ cmd: "resolve", id, key });
    return id;
  });
  const cli = g.spawn("cli-process.mjs", {
    args: [JSON.stringify({ cache: urls[label] })],
    env,
    label: `cli-${label.replace(/\W/g, "")}`,
  });
  return { ids, cli };
}

/** One store's rounds; the three stores run at the same time, each with its own emulator. */
async function killRounds(label, spec) {
  const imds = await startImdsEmulator();
  const env = { AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url };
  // The key `credcache process --source imds` uses, so the CLI runs share it; emptied before
  // each round, so each round starts cold.
  const key = instanceMetadataKey({ env });
  const store = await openStore(spec);
  const emptyKey = async () => {
    await store.remove(key);
    await store.remove(refreshStateKey(key));
  };
  const cliWaits = [];
  const spawnResolver = (extra = {}, role = "resolver") =>
    g.spawn("resolver.mjs", {
      args: [JSON.stringify({ store: spec, lockTtlMs: LOCK_TTL_MS, ...extra })],
      env,
      label: `${role}-${label.replace(/\W/g, "")}`,
    });
  await g.check(`${label}: lock holder kill -9'ed mid-fetch (${ROUNDS[label]} kills)`, async (c) => {
    const workers = Array.from({ length: WORKERS }, () => spawnResolver());
    for (const w of workers) await w.waitType("ready", 60_000);
    // The victim of the next round starts while this one runs. Its IMDS timeout is short (2 x
    // lockTtl): if the kill ever missed, it would give up on its own instead of hanging.
    let victim = spawnResolver({ imdsTimeoutMs: 2 * LOCK_TTL_MS }, "victim");
    const waits = [];
    const fetchesAfterKill = [];
    for (let round = 0; round < ROUNDS[label]; round++) {
      await c.trial(async () => {
        const current = victim;
        await current.waitType("ready", 60_000);
        victim =
          round + 1 < ROUNDS[label] ? spawnResolver({ imdsTimeoutMs: 2 * LOCK_TTL_MS }, "victim") : undefined;
        await emptyKey();
        imds.resetStats();
        imds.setFaults({ credentials: { hang: true, count: 1 } });
        current.send({ cmd: "resolve", id: ++nextId, key });
        await current.waitFor(
          (m) => m.t === "event" && m.type === "lock-acquired",
          30_000,
          "the victim to take the lock",
        );
        await current.waitFor(
          (m) => m.t === "event" && m.type === "refresh-start",
          30_000,
          "the victim to start fetching",
        );
        await waitUntil(() => imds.stats.hangs >= 1, 30_000, "the victim's credentials request to hang");
        // The others ask now, find the lock taken, and wait.
        const since = workers.map((w) => w.messages.length);
        const { ids, cli } = askAll(workers, key, label, env);
        const cliKilledAt = performance.now();
        // Kill once every worker is waiting on the lock (or, on a starved machine, already past
        // it: a lease that ran out is simply taken over).
        await Promise.all(
          workers.map((w, i) =>
            w.waitFor(
              (m) =>
                (m.t === "event" && (m.type === "lock-busy" || m.type === "lock-acquired")) ||
                (m.t === "resolved" && m.id === ids[i]),
              30_000,
              "a worker to reach the lock",
              { since: since[i], consume: false },
            ),
          ),
        );
        current.kill("SIGKILL");
        const exit = await current.exited;
        expect(
          exit.signal === "SIGKILL",
          `the victim was not killed mid-fetch (exit ${JSON.stringify(exit)})`,
        );
        expect(!current.messages.some((m) => m.t === "resolved"), "the victim finished before it was killed");
        const fetchesBefore = imds.stats.credentialFetches;
        const results = await Promise.all(
          workers.map((w, i) =>
            w.waitFor((m) => m.t === "resolved" && m.id === ids[i], 30_000, "credentials"),
          ),
        );
        const cliRun = await cli.waitType("cli", 60_000);
        cliWaits.push(performance.now() - cliKilledAt);
        const current_ = imds.currentCredentials().accessKeyId;
        const issued = new Set(imds.secretsIssued().map((s) => sha(s).slice(0, 24)));
        g.secrets(imds.secretsIssued());
        fetchesAfterKill.push(imds.stats.credentialFetches - fetchesBefore);
        for (const r of results) {
          expect(r.ok, () => `a worker got an error: ${r.error?.name}: ${r.error?.message}`);
          waits.push(r.ms);
          expect(
            r.creds.accessKeyId === current_ && issued.has(r.creds.secretSha) && issued.has(r.creds.tokenSha),
            "a worker got credentials that the emulator did not issue",
          );
          expect(
            r.ms <= LOCK_TTL_MS + 1000,
            `a worker waited ${Math.round(r.ms)} ms, more than lockTtl + 1 s (${LOCK_TTL_MS + 1000} ms)`,
          );
        }
        expect(
          cliRun.code === 0 &&
            cliRun.creds?.accessKeyId === current_ &&
            issued.has(cliRun.creds.secretSha) &&
            issued.has(cliRun.creds.tokenSha),
          () =>
            `the credcache process run did not get the current credentials (exit ${cliRun.code}: ${cliRun.warnings[0] ?? ""})`,
        );
        expect(
          imds.stats.credentialFetches - fetchesBefore === 1,
          `${imds.stats.credentialFetches - fetchesBefore} credential fetches after the kill; one process (or the CLI run) should fetch, the rest adopt`,
        );
      });
    }
    victim?.kill();
    for (const w of workers) await w.stop();
    const sorted = waits.sort((a, b) => a - b);
    const cliSorted = cliWaits.sort((a, b) => a - b);
    c.note = `${WORKERS} waiting processes + 1 credcache process run per kill (CLI run, spawn to exit, max ${Math.round(cliSorted.at(-1) ?? 0)} ms); wait p50 ${Math.round(sorted[Math.floor(sorted.length / 2)] ?? 0)} ms, max ${Math.round(sorted.at(-1) ?? 0)} ms (limit ${LOCK_TTL_MS + 1000}); fetches after each kill: ${fetchesAfterKill.join(",")}`;
  });
  await failedHolder(label, spec, imds, env, key, emptyKey);
  await store.close?.();
  g.secrets(imds.secretsIssued());
  await imds.close();
}

/**
 * A holder whose fetch fails (500 after 1 s) while two fromCache processes and a credcache
 * process run wait for it. It records a shared backoff; until that backoff ends, no request
 * reaches the emulator, whoever is waiting.
 */
async function failedHolder(label, spec, imds, env, key, emptyKey) {
  await g.check(
    `${label}: lock holder's fetch fails; waiters (processes, credcache process) honour its backoff`,
    async (c) => {
      await c.trial(async () => {
        await emptyKey();
        const spawn = (role) =>
          g.spawn("resolver.mjs", {
            // The default lease: it covers the holder's tries (a lease shorter than the
            // attempt lets a second process in while the first still asks; see the report).
            args: [JSON.stringify({ store: spec })],
            env,
            label: `${role}-${label.replace(/\W/g, "")}`,
          });
        const holder = spawn("failing-holder");
        const waiters = [spawn("waiter"), spawn("waiter")];
        for (const p of [holder, ...waiters]) await p.waitType("ready", 60_000);
        imds.setFaults({ credentials: { status: 500, latencyMs: 1000 } });
        holder.send({ cmd: "resolve", id: ++nextId, key });
        await holder.waitFor(
          (m) => m.t === "event" && m.type === "refresh-start",
          30_000,
          "the holder to start fetching",
        );
        const { ids, cli } = askAll(waiters, key, label, env);
        // Watch the store for the holder's recorded failure, and the emulator's request count
        // from then on, every 20 ms, until that backoff ends.
        const store = await openStore(spec);
        let state;
        try {
          await waitUntil(
            async () => {
              state = parseRefreshState(await store.get(refreshStateKey(key)));
              return (state?.failures ?? 0) >= 1 && state.nextAttemptAt > 0;
            },
            30_000,
            "the holder to record its failure",
            20,
          );
        } finally {
          await store.close?.();
        }
        const requestsAtFailure = imds.stats.requests.total;
        const backoffLeft = state.nextAttemptAt - Date.now();
        let asked = 0;
        // Stop 100 ms short of the backoff's end: the poll's own delay must not count a legal request.
        while (Date.now() < state.nextAttemptAt - 100) {
          asked = imds.stats.requests.total - requestsAtFailure;
          await sleep(20);
        }
        const results = await Promise.all(
          waiters.map((w, i) =>
            w.waitFor((m) => m.t === "resolved" && m.id === ids[i], 30_000, "a waiter's answer"),
          ),
        );
        const cliRun = await cli.waitType("cli", 60_000);
        imds.setFaults(undefined);
        holder.kill();
        for (const w of waiters) await w.stop();
        const outcomes = [
          ...results.map((r) => (r.ok ? "credentials" : (r.error?.code ?? r.error?.name))),
          `cli exit ${cliRun.code}`,
        ];
        c.note = `backoff ${Math.round(backoffLeft)} ms left when recorded; ${asked} requests within it; waiters: ${outcomes.join(", ")}`;
        expect(
          backoffLeft > 200,
          `the recorded backoff was already over (${Math.round(backoffLeft)} ms left); nothing to check`,
        );
        expect(
          asked === 0,
          `${asked} requests reached the failing source within the backoff the holder recorded`,
        );
        for (const r of results) {
          // No valid set exists: an error is the right answer: credcache's own (typed, with a
          // code) when it did not ask, or the source's own error when it asked after the backoff.
          expect(
            r.ok || typeof r.error?.code === "string" || /ProviderError$/.test(r.error?.name ?? ""),
            () => `a waiter failed with an unexpected error: ${r.error?.name}: ${r.error?.message}`,
          );
        }
      });
    },
  );
}

await Promise.all(Object.entries(specs).map(([label, spec]) => killRounds(label, spec)));
// Same order in every run's table.
const order = Object.keys(specs);
g.results.sort(
  (a, b) => order.findIndex((l) => a.check.startsWith(l)) - order.findIndex((l) => b.check.startsWith(l)),
);
g.finish();
