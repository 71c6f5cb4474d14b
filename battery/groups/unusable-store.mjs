// Unusable store (fault 3): while 32 processes resolve credentials in a loop, the store breaks,
// one kind at a time: the fs cache directory becomes read-only, the SQLite database file is
// replaced by garbage (renamed over, then overwritten in place), Redis is killed and restarted
// (a private redis-server on a free port; the shared one on 6379 is never touched).
// Zero failed resolutions: the source (the IMDS emulator, through the real SDK) takes over.
// The workers run as uid 65534, so that a read-only directory really refuses their writes.

import { randomBytes } from "node:crypto";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { startImdsEmulator } from "@credcache/imds-emulator";
import { freePort } from "../../test/support/redisServer.mjs";
import { allReady, expect, NOBODY, requireRoot, sleep, startGroup, waitUntil } from "../harness.mjs";
import { setting } from "../settings.mjs";

const g = startGroup("unusable-store");
if (!requireRoot(g)) await new Promise(() => {}); // finish() exits
const WORKERS = Number(setting("BATTERY_UNUSABLE_WORKERS")) || 32;
const PHASE_MS = 2500;

const imds = await startImdsEmulator();
const base = g.tmp("stores", { owner: NOBODY, mode: 0o755 });
const env = { AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url };

const workers = Array.from({ length: WORKERS }, () =>
  g.spawn("resolver.mjs", {
    // A generous IMDS timeout: this group is about the store, not about a slow source.
    args: [JSON.stringify({ lockTtlMs: 2000, lockWaitMs: 3000, imdsTimeoutMs: 5000, preload: true })],
    env,
    uid: NOBODY,
    label: "worker",
  }),
);
// Not one of the 32: answers peeks and checkpoints while the workers are busy looping.
const helper = g.spawn("resolver.mjs", { args: ["{}"], env, uid: NOBODY, label: "helper" });
const readyMs = await allReady(g, [...workers, helper], 90_000, `${WORKERS} workers`);
console.log(`${WORKERS} workers ready in ${(readyMs / 1000).toFixed(1)} s`);

let nextId = 0;

/** What a new process finds in the store (asked through a worker: it runs as the store's owner). */
async function peek(spec, key) {
  const id = ++nextId;
  helper.send({ cmd: "peek", id, key, store: spec });
  const answer = await helper.waitFor((m) => m.t === "peeked" && m.id === id, 20_000, "a peek");
  return answer.ok;
}

/**
 * Every worker resolves `key` once (the healthy store then holds a record), then loops over it
 * for `phases` x PHASE_MS; `at(i)` breaks (or mends) the store at each phase boundary.
 * Problems inside `at` are returned, not thrown, so that the loops are always collected.
 */
async function storm(spec, key, phases, at) {
  const warm = workers.map((w) => {
    const id = ++nextId;
    w.send({ cmd: "resolve", id, key, store: spec });
    return id;
  });
  const warmed = await Promise.all(
    workers.map((w, i) =>
      w.waitFor((m) => m.t === "resolved" && m.id === warm[i], 60_000, "the warm-up resolution"),
    ),
  );
  const untilMs = Date.now() + phases * PHASE_MS;
  const ids = workers.map((w, i) => {
    const id = ++nextId;
    // Half the workers keep one store (a long-lived process), half open one per resolution.
    w.send({ cmd: "loop", id, key, store: spec, untilMs, pauseMs: 100, freshStore: i % 2 === 1 });
    return id;
  });
  const marks = [];
  const problems = [];
  for (let i = 1; i < phases; i++) {
    await sleep(Math.max(0, untilMs - (phases - i) * PHASE_MS - Date.now()));
    marks.push({ phase: i, fetches: imds.stats.credentialFetches });
    try {
      await at(i);
    } catch (error) {
      problems.push(`phase ${i}: ${error.message}`);
    }
  }
  const results = await Promise.all(
    workers.map((w, i) =>
      w.waitFor((m) => m.t === "looped" && m.id === ids[i], untilMs - Date.now() + 60_000, "the loop to end"),
    ),
  );
  g.secrets(imds.secretsIssued());
  const warmFailures = warmed.filter((r) => !r.ok).map((r) => r.error);
  return { results, marks, problems, warmFailures };
}

function tallyLoops(c, { results, problems, warmFailures }) {
  for (const p of problems) c.fail(p);
  for (const e of warmFailures)
    c.fail(`a warm-up resolution (healthy store) failed: ${e.name}: ${e.message}`);
  let done = 0;
  let failed = 0;
  let cacheErrors = 0;
  for (const r of results) {
    done += r.done;
    failed += r.failed;
    cacheErrors += r.cacheErrors;
    for (const e of r.errors) c.fail(`a resolution failed: ${e.name}: ${String(e.message).slice(0, 160)}`);
  }
  return { done, failed, cacheErrors };
}

// ---- fs: the directory becomes read-only ----

await g.check(`fs: cache directory becomes read-only under ${WORKERS} processes`, async (c) => {
  const dir = join(base, "fs");
  const spec = { kind: "fs", dir };
  const key = `unusable-fs-${g.runId}`;
  let listingWhileReadOnly;
  let listingAtBreak = new Set();
  const outcome = await storm(spec, key, 3, async (phase) => {
    if (phase === 1) {
      expect(existsSync(dir), "the workers did not create the cache directory");
      // Drop what is there (so that every resolution has to write), then take write access away.
      for (const name of readdirSync(dir)) {
        try {
          unlinkSync(join(dir, name));
        } catch {}
      }
      chmodSync(dir, 0o500);
      // (A lock mutex directory caught mid-compare-and-swap may stay: it is not new.)
      listingAtBreak = new Set(readdirSync(dir));
    } else {
      listingWhileReadOnly = readdirSync(dir).filter((name) => !listingAtBreak.has(name));
      chmodSync(dir, 0o700);
    }
  });
  const t = tallyLoops(c, outcome);
  const { marks } = outcome;
  c.attempt(t.done);
  const fetchesWhileBroken = (marks[1]?.fetches ?? 0) - (marks[0]?.fetches ?? 0);
  // Writable again: the next resolutions wrote a record.
  const back = await peek(spec, key);
  c.note = `${t.done} resolutions, ${t.failed} failed, ${t.cacheErrors} cache-errors, ${fetchesWhileBroken} source fetches while read-only; record back after restore: ${back}`;

  expect(t.failed === 0, `${t.failed} of ${t.done} resolutions failed`);
  expect(t.cacheErrors > 0, "no cache-error was reported: the directory never refused a write");
  expect(fetchesWhileBroken > 0, "the source was not asked while the directory was read-only");
  expect(
    (listingWhileReadOnly ?? []).length === 0,
    () => `files appeared in the read-only directory: ${listingWhileReadOnly.join(", ")}`,
  );
  c.attempt();
  if (!back) c.fail("after the directory became writable again, no record was written");
});

// ---- sqlite: the database file is replaced by garbage ----

await g.check(`sqlite: database file replaced by garbage under ${WORKERS} processes`, async (c) => {
  const dir = join(base, "sqlite");
  mkdirSync(dir, { mode: 0o700 });
  chownSync(dir, NOBODY, NOBODY);
  const path = join(dir, "cache.db");
  const spec = { kind: "sqlite", path };
  const key = `unusable-sqlite-${g.runId}`;
  const garbage = () => randomBytes(16 * 1024);
  const outcome = await storm(spec, key, 3, async (phase) => {
    if (phase === 1) {
      // Garbage written over the live file in place (same inode, under every open connection),
      // right after a checkpoint: the WAL holds nothing that would mask the damage.
      const id = ++nextId;
      helper.send({ cmd: "checkpoint", id, path });
      await helper.waitFor((m) => m.t === "checkpointed" && m.id === id, 20_000, "a checkpoint");
      writeFileSync(path, garbage());
    } else {
      // Then a garbage file renamed over the database, its -wal and -shm gone.
      const tmp = join(dir, "garbage.tmp");
      writeFileSync(tmp, garbage(), { mode: 0o600 });
      chownSync(tmp, NOBODY, NOBODY);
      renameSync(tmp, path);
      for (const suffix of ["-wal", "-shm"]) rmSync(path + suffix, { force: true });
    }
  });
  const t = tallyLoops(c, outcome);
  const { marks } = outcome;
  c.attempt(t.done);
  const entry = { ok: await peek(spec, key) };
  c.note = `${t.done} resolutions, ${t.failed} failed, ${t.cacheErrors} cache-errors, ${(marks[1]?.fetches ?? 0) - (marks[0]?.fetches ?? 0)} / ${imds.stats.credentialFetches - (marks[1]?.fetches ?? 0)} fetches after each garbage (in place / renamed over); moved aside: ${readdirSync(dir).filter((n) => n.includes("corrupt")).length} files; recovered: ${entry.ok}`;
  expect(t.failed === 0, `${t.failed} of ${t.done} resolutions failed`);
  expect(t.cacheErrors > 0, "no cache-error was reported: the garbage went unnoticed");
  c.attempt();
  if (!entry.ok) c.fail("the store did not recover: no valid record at the database path afterwards");
});

// ---- keyv + redis: Redis is killed and restarted ----

function ping(port) {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once("error", () => done(false));
    socket.once("data", (data) => done(String(data).startsWith("+PONG")));
    socket.write("PING\r\n");
  });
}

async function startRedis(port) {
  const server = g.spawn("redis-server", {
    command: true,
    args: [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--daemonize",
      "no",
    ],
    label: "redis",
  });
  await waitUntil(() => ping(port), 10_000, `redis-server on port ${port}`, 50);
  return server;
}

await g.check(`keyv+redis: Redis killed mid-run and restarted under ${WORKERS} processes`, async (c) => {
  const port = await freePort();
  let redis = await startRedis(port);
  const url = `redis://127.0.0.1:${port}`;
  const namespace = `battery-unusable-${g.runId}`;
  const spec = { kind: "redis", url, namespace };
  const key = `unusable-redis-${g.runId}`;
  try {
    const outcome = await storm(spec, key, 3, async (phase) => {
      if (phase === 1) {
        redis.kill("SIGKILL");
        await redis.exited;
      } else {
        redis = await startRedis(port);
      }
    });
    const t = tallyLoops(c, outcome);
    const { marks } = outcome;
    c.attempt(t.done);
    expect(t.failed === 0, `${t.failed} of ${t.done} resolutions failed`);
    expect(t.cacheErrors > 0, "no cache-error was reported: Redis was never missed");
    const entry = { ok: await peek(spec, key) };
    c.note = `${t.done} resolutions, ${t.failed} failed, ${t.cacheErrors} cache-errors, ${imds.stats.credentialFetches - marks[0].fetches} fetches after the kill; record back after restart: ${entry.ok}`;
    c.attempt();
    if (!entry.ok) c.fail("after Redis came back, no record was written to it");
  } finally {
    redis.kill("SIGKILL");
  }
});

for (const w of [...workers, helper]) w.send({ cmd: "exit" });
await Promise.all([...workers, helper].map((w) => w.stop(5000)));
g.secrets(imds.secretsIssued());
await imds.close();
g.finish();
