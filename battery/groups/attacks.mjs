// Attacks on the stores' paths by a real other user (uid 65534) against a root victim
// (issues 12 and 15). Each check counts the victim's attempts and the leaks: files in the
// attacker's reach that hold the victim's secret.
//
// - The ancestor-swap race, on fs and sqlite: the attacker can write to the parent of the
//   store directory and swaps the directory for a symlink to its own and back, in a loop,
//   while the victim writes. The store must refuse such a place outright. Controls: under a
//   sticky root-owned parent (like /tmp) the attacker cannot swap, and every write lands.
// - The planted WAL: a member of a shared group directory creates `cache.db-wal` 0666 before
//   the victim's first write and keeps it open. The victim must refuse the directory, and
//   the attacker's open file must never receive a secret.

import { chmodSync, chownSync, lstatSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, fakeCredentials, NOBODY, requireRoot, startGroup } from "../harness.mjs";
import { openStore } from "../stores.mjs";

const g = startGroup("attacks");
if (!requireRoot(g)) await new Promise(() => {}); // finish() exits

const FS_WRITES = 1000;
const SQLITE_OPENS = 200;
const WAL_TRIALS = 5;

/** A credential record with fresh secrets, registered for the battery's scan. */
function secretRecord(label) {
  const creds = fakeCredentials(label);
  g.secrets([creds.secretAccessKey, creds.sessionToken]);
  return { v: 1, ...creds, expiration: Date.now() + 3_600_000, cachedAt: Date.now() };
}

function dirOf(path, uid, mode, gid = uid) {
  mkdirSync(path);
  chownSync(path, uid, gid);
  chmodSync(path, mode);
  return path;
}

/** The regular files directly in `dir` that hold `secret`. */
function filesHolding(dir, secret) {
  const found = [];
  for (const name of readdirSync(dir)) {
    const file = join(dir, name);
    if (!lstatSync(file).isFile()) continue;
    if (readFileSync(file).includes(secret)) found.push(name);
  }
  return found;
}

/**
 * The race: `write()` is called `attempts` times while uid 65534 swaps `target` (a directory
 * of the victim's, in a parent of mode `parentMode`) for a symlink to its own directory.
 */
async function race(c, { label, parentMode, attempts, target: targetName, write }) {
  const base = g.tmp(label, { mode: 0o755 });
  const parent = dirOf(join(base, "parent"), 0, parentMode);
  const target = dirOf(join(parent, targetName), 0, 0o700); // the victim's, from an earlier run
  const attackerDir = dirOf(join(base, "attacker"), NOBODY, 0o777);
  const attacker = g.spawn("swap-attacker.mjs", {
    args: [JSON.stringify({ target, attackerDir })],
    uid: NOBODY,
    label: `${label}-attacker`,
  });
  await attacker.waitType("ready", 20_000);
  const record = secretRecord(label);
  const outcome = { written: 0, refused: 0 };
  for (let i = 0; i < attempts; i++) {
    c.attempt();
    try {
      await write(target, { ...record, i });
      outcome.written += 1;
    } catch (error) {
      g.seenError(error);
      if (error?.code === "ERR_CREDCACHE_UNAVAILABLE") outcome.refused += 1;
      else c.fail(`write ${i}: not a CacheUnavailableError: ${error?.name}: ${error?.message}`);
    }
  }
  attacker.send({ cmd: "stop" });
  const stopped = await attacker.waitType("stopped", 20_000);
  await attacker.stop();
  const leaked = filesHolding(attackerDir, record.secretAccessKey);
  if (leaked.length > 0) {
    c.lost(leaked.length);
    c.fail(`${leaked.length} files in the attacker's directory hold the secret`);
  }
  return { ...outcome, swaps: stopped.swaps, rounds: stopped.rounds, leaked: leaked.length };
}

/** One store for all the writes, as a long-running process has: every operation re-checks. */
function fsWriter() {
  let store;
  return async (dir, value) => {
    store ??= await openStore({ kind: "fs", dir });
    await store.set("creds", value, 3600);
  };
}
/** A new store each time: every attempt opens the database, where the checks run. */
async function sqliteWrite(dir, value) {
  const store = await openStore({ kind: "sqlite", path: join(dir, "cache.db") });
  try {
    await store.set("creds", value, 3600);
  } finally {
    await store.close();
  }
}

const races = [
  { store: "fs", attempts: FS_WRITES, target: "cache", writer: fsWriter },
  { store: "sqlite", attempts: SQLITE_OPENS, target: "db", writer: () => sqliteWrite },
];
for (const { store, attempts, target, writer } of races) {
  await g.check(
    `${store}: ancestor swap under an attacker-writable parent (0777) is refused, no leak`,
    async (c) => {
      const r = await race(c, {
        label: `${store}-swap`,
        parentMode: 0o777,
        attempts,
        target,
        write: writer(),
      });
      c.note = `${attempts} writes, ${r.refused} refused, attacker swapped ${r.swaps} times, ${r.leaked} leaks`;
      expect(r.refused === attempts, `${r.written} of ${attempts} writes went through`);
      expect(r.swaps > 0, "the attacker never managed a swap: the race did not run");
    },
  );
  await g.check(
    `${store}: under a sticky root-owned parent (1777) the attacker cannot swap; writes land`,
    async (c) => {
      const r = await race(c, {
        label: `${store}-sticky`,
        parentMode: 0o1777,
        attempts,
        target,
        write: writer(),
      });
      c.note = `${r.written} of ${attempts} writes landed, ${r.swaps} of ${r.rounds} swap attempts worked, ${r.leaked} leaks`;
      expect(r.written === attempts, `${r.refused} of ${attempts} writes were refused`);
      expect(r.swaps === 0, `the attacker swapped ${r.swaps} times`);
    },
  );
}

await g.check("sqlite: a -wal planted 0666 and kept open by a group member receives nothing", async (c) => {
  const base = g.tmp("wal", { mode: 0o755 });
  let refused = 0;
  c.note = `${WAL_TRIALS} planted -wal files`;
  for (let i = 0; i < WAL_TRIALS; i++) {
    await c.trial(async () => {
      // A setgid directory shared by the victim (root) and the attacker's group.
      const shared = dirOf(join(base, `shared-${i}`), 0, 0o2770, NOBODY);
      const path = join(shared, "cache.db");
      const planter = g.spawn("wal-planter.mjs", {
        args: [JSON.stringify({ file: `${path}-wal` })],
        uid: NOBODY,
        label: "wal-planter",
      });
      await planter.waitType("ready", 20_000);
      const record = secretRecord("wal");
      const store = await openStore({ kind: "sqlite", path });
      let error;
      try {
        await store.set("creds", record, 3600);
      } catch (e) {
        error = e;
        g.seenError(e);
      }
      const copy = join(shared, "what-the-planter-read");
      planter.send({ cmd: "copy", id: i, to: copy });
      await planter.waitType("copied", 20_000);
      await store.close();
      await planter.stop();
      if (readFileSync(copy).includes(record.secretAccessKey)) {
        c.lost(1);
        throw new Error("the secret reached the planted -wal");
      }
      expect(error?.code === "ERR_CREDCACHE_UNAVAILABLE", () => `the write was not refused (${error})`);
      expect(/writable by group/.test(error.message), () => `refused for another reason: ${error.message}`);
      refused += 1;
      c.note = `${WAL_TRIALS} planted -wal files; the shared directory was refused ${refused} times`;
    });
  }
});

g.finish();
