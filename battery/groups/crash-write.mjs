// Crash mid-write (fault 2): a writer dies (kill -9) between the temp write and the rename,
// right after the rename, with an empty temp file, at random moments of back-to-back writes,
// and inside an uncommitted SQLite transaction. The next reader sees the old record or the new
// one, never a torn one; leftover temp files are cleaned up (opportunistically by the next
// writer and by prune()), while a young temp file, possibly a write in progress, is left alone.

import { existsSync, readdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseRecord } from "@credcache/core";
import { expect, fakeCredentials, sha, sleep, startGroup } from "../harness.mjs";
import { fsEntryPath, openStore } from "../stores.mjs";

const g = startGroup("crash-write");
const base = g.tmp("stores", { mode: 0o700 });
const fsDir = join(base, "fs");
const dbPath = join(base, "cache.db");
const fsStore = await openStore({ kind: "fs", dir: fsDir });
const TEMP = /^[0-9a-f]{64}\.json\.\d+$/;

function record(label) {
  const creds = fakeCredentials(label);
  g.secrets([creds.secretAccessKey, creds.sessionToken]);
  return { v: 1, ...creds, expiration: Date.now() + 6 * 3_600_000, cachedAt: Date.now() };
}

const temps = () => readdirSync(fsDir).filter((n) => TEMP.test(n));

/** The entry as the bytes on disk say, and as the adapter says. Throws on a torn file. */
async function readBoth(key) {
  const file = await fsEntryPath(fsDir, key);
  const text = readFileSync(file, "utf8");
  let envelope;
  try {
    envelope = JSON.parse(text);
  } catch {
    throw new Error(`torn entry file: ${text.length} bytes that are not JSON`);
  }
  const viaStore = await fsStore.get(key);
  expect(viaStore !== undefined, "the adapter returned nothing for an intact file");
  expect(JSON.stringify(viaStore) === JSON.stringify(envelope.value), "the adapter and the file disagree");
  return envelope.value;
}

function intactTagged(value) {
  return typeof value?.payload === "string" && value.sum === sha(`${value.seq}:${value.payload}`);
}

async function killAt(mode, key, value, label) {
  const child = g.spawn("crash-writer.mjs", {
    args: [JSON.stringify({ mode, dir: fsDir, path: dbPath, key, value })],
    label,
  });
  await child.waitType("paused", 20_000);
  child.kill("SIGKILL");
  const exit = await child.exited;
  expect(exit.signal === "SIGKILL", `the writer was not killed mid-write (${JSON.stringify(exit)})`);
}

// ---- fs ----

const crashModes = [
  {
    mode: "fs-before-rename",
    sees: "old",
    temp: true,
    n: 5,
    title: "killed between the temp write and the rename",
  },
  { mode: "fs-after-rename", sees: "new", temp: false, n: 5, title: "killed right after the rename" },
  {
    mode: "fs-before-write",
    sees: "old",
    temp: true,
    n: 3,
    title: "killed with the temp file created, nothing written",
  },
];
for (const plan of crashModes) {
  await g.check(`fs: ${plan.title}`, async (c) => {
    for (let i = 0; i < plan.n; i++) {
      await c.trial(async () => {
        const key = `crash-${plan.mode}-${i}-${g.runId}`;
        const oldRecord = record("old");
        const newRecord = record("new");
        await fsStore.set(key, oldRecord, 3600);
        const before = new Set(temps());
        await killAt(plan.mode, key, newRecord, plan.mode);
        const seen = await readBoth(key);
        const want = plan.sees === "old" ? oldRecord : newRecord;
        if (seen.accessKeyId !== want.accessKeyId) {
          c.lost(1);
          throw new Error(
            `the next reader saw the ${seen.accessKeyId === oldRecord.accessKeyId ? "old" : "another"} record, expected the ${plan.sees} one`,
          );
        }
        expect(parseRecord(seen).ok, "the record read back is not a valid record");
        const leftover = temps().filter((n) => !before.has(n));
        expect(
          plan.temp ? leftover.length === 1 : leftover.length === 0,
          `${leftover.length} new temp files left`,
        );
      });
    }
    c.note = `reader saw the ${plan.sees} record every time`;
  });
}

/** Starts a crash-writer writing back to back and kills it (SIGKILL) 30 to 280 ms in. */
async function killMidLoop(config) {
  const child = g.spawn("crash-writer.mjs", { args: [JSON.stringify(config)], label: config.mode });
  await child.waitType("writing", 20_000);
  await sleep(30 + Math.floor(Math.random() * 250));
  child.kill("SIGKILL");
  await child.exited;
}

await g.check("fs: killed at random moments of back-to-back writes", async (c) => {
  const key = `crash-fs-loop-${g.runId}`;
  for (let i = 0; i < 10; i++) {
    await c.trial(async () => {
      await killMidLoop({ mode: "fs-loop", dir: fsDir, key });
      if (!existsSync(await fsEntryPath(fsDir, key))) return; // killed before its first rename
      const value = await readBoth(key);
      expect(intactTagged(value), "a torn or altered value");
    });
  }
  c.note = "10 kills; each time the file on disk parsed and its checksum matched";
});

await g.check("fs: leftover temp files are cleaned up, a young one is left alone", async (c) => {
  // Temp files the crashes above left behind: make them look two minutes old.
  const old = temps();
  c.attempt(old.length);
  const past = new Date(Date.now() - 120_000);
  for (const name of old) utimesSync(join(fsDir, name), past, past);
  // A young temp file, as a write in progress would have.
  const young = `${"0".repeat(64)}.json.12345`;
  writeFileSync(join(fsDir, young), "{", { mode: 0o600 });
  // The next writer (a new process) sweeps on its first write.
  const child = g.spawn("crash-writer.mjs", {
    args: [
      JSON.stringify({
        mode: "fs-set",
        dir: fsDir,
        key: `crash-next-writer-${g.runId}`,
        value: record("next"),
      }),
    ],
    label: "next-writer",
  });
  await child.waitType("done", 20_000);
  const afterSweep = temps();
  for (const name of old)
    if (afterSweep.includes(name))
      c.fail(`the next writer did not remove the stale temp file ${name.slice(-16)}`);
  if (!afterSweep.includes(young)) c.fail("a young temp file (possibly a write in progress) was removed");
  // prune() removes stale ones too: crash once more, age it, prune.
  const key = `crash-prune-${g.runId}`;
  await fsStore.set(key, record("old"), 3600);
  await killAt("fs-before-rename", key, record("new"), "prune");
  const fresh = temps().filter((n) => n !== young);
  c.attempt(fresh.length);
  for (const name of fresh) utimesSync(join(fsDir, name), past, past);
  const removed = await fsStore.prune();
  const afterPrune = temps();
  for (const name of fresh)
    if (afterPrune.includes(name)) c.fail(`prune() did not remove the stale temp file ${name.slice(-16)}`);
  if (!afterPrune.includes(young)) c.fail("prune() removed a young temp file");
  c.note = `${old.length} stale temp files removed by the next writer, ${fresh.length} by prune() (which reported ${removed}); the young one kept`;
});

// ---- sqlite ----

const sqliteStore = await openStore({ kind: "sqlite", path: dbPath });
const { default: Database } = await import("better-sqlite3");

function integrity() {
  const db = new Database(dbPath, { readonly: true, timeout: 2000 });
  try {
    return {
      check: db.pragma("integrity_check", { simple: true }),
      fillers: db.prepare("SELECT count(*) FROM entries WHERE key LIKE 'filler-%'").pluck().get(),
    };
  } finally {
    db.close();
  }
}

await g.check("sqlite: killed inside an uncommitted write transaction", async (c) => {
  for (let i = 0; i < 3; i++) {
    await c.trial(async () => {
      const key = `crash-sqlite-${i}-${g.runId}`;
      const oldRecord = record("old");
      await sqliteStore.set(key, oldRecord, 3600);
      await killAt("sqlite-mid-txn", key, record("new"), "sqlite-txn");
      const reader = await openStore({ kind: "sqlite", path: dbPath });
      const seen = await reader.get(key);
      await reader.close();
      if (seen?.accessKeyId !== oldRecord.accessKeyId) {
        c.lost(1);
        throw new Error("the next reader did not see the old record");
      }
      const { check, fillers } = integrity();
      expect(check === "ok", `integrity_check: ${check}`);
      expect(fillers === 0, `${fillers} rows of the dead transaction are visible`);
      // And the database takes writes again (no lock left behind).
      const next = record("next");
      const writer = g.spawn("crash-writer.mjs", {
        args: [JSON.stringify({ mode: "sqlite-set", path: dbPath, key, value: next })],
        label: "sqlite-next",
      });
      await writer.waitType("done", 20_000);
      expect(
        (await sqliteStore.get(key))?.accessKeyId === next.accessKeyId,
        "a write after the crash did not land",
      );
    });
  }
  c.note = "3000 spilled pages per dead transaction; old record seen, integrity ok, writes resume";
});

await g.check("sqlite: killed at random moments of back-to-back writes", async (c) => {
  const key = `crash-sqlite-loop-${g.runId}`;
  for (let i = 0; i < 8; i++) {
    await c.trial(async () => {
      await killMidLoop({ mode: "sqlite-loop", path: dbPath, key });
      const reader = await openStore({ kind: "sqlite", path: dbPath });
      const value = await reader.get(key);
      await reader.close();
      if (value === undefined) return; // killed before its first commit
      expect(intactTagged(value), "a torn or altered value");
      expect(integrity().check === "ok", "integrity_check failed");
    });
  }
  c.note = "8 kills; the value read back always matched its checksum";
});

await sqliteStore.close();
g.finish();
