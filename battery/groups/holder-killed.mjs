// Holder killed (fault 1): a process is kill -9'ed while it holds the refresh lock, caught
// mid-fetch by an emulator that hangs its credentials request. Every other process still
// gets credentials within lockTtl + 1 s, none gets an error, and exactly one of them fetches.
// 20 kills over the fs, sqlite and keyv+redis stores; real processes, the real SDK provider.

import { join } from "node:path";
import { startImdsEmulator } from "@credcache/imds-emulator";
import { expect, sha, startGroup, waitUntil } from "../harness.mjs";
import { REDIS_URL } from "../stores.mjs";

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

let nextId = 0;

/** One store's rounds; the three stores run at the same time, each with its own emulator. */
async function killRounds(label, spec) {
  const imds = await startImdsEmulator();
  const env = { AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url };
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
        const key = `holder-${label}-${round}-${g.runId}`;
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
        const ids = workers.map((w) => {
          const id = ++nextId;
          w.send({ cmd: "resolve", id, key });
          return id;
        });
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
          imds.stats.credentialFetches - fetchesBefore === 1,
          `${imds.stats.credentialFetches - fetchesBefore} credential fetches after the kill; one process should fetch, the rest adopt`,
        );
      });
    }
    victim?.kill();
    for (const w of workers) await w.stop();
    const sorted = waits.sort((a, b) => a - b);
    c.note = `${WORKERS} waiting processes per kill; wait p50 ${Math.round(sorted[Math.floor(sorted.length / 2)] ?? 0)} ms, max ${Math.round(sorted.at(-1) ?? 0)} ms (limit ${LOCK_TTL_MS + 1000}); fetches after each kill: ${fetchesAfterKill.join(",")}`;
  });
  g.secrets(imds.secretsIssued());
  await imds.close();
}

await Promise.all(Object.entries(specs).map(([label, spec]) => killRounds(label, spec)));
// Same order in every run's table.
const order = Object.keys(specs);
g.results.sort(
  (a, b) => order.findIndex((l) => a.check.startsWith(l)) - order.findIndex((l) => b.check.startsWith(l)),
);
g.finish();
