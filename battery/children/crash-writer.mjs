// A writer that the parent kills at a chosen moment of a write.
//
// argv[2]: JSON { mode, dir?, path?, key, value? }
// modes:
//   fs-before-rename  fs.rename (as write-file-atomic calls it) hangs: the temp file is written,
//                     fsynced and chmod'ed, the rename has not happened. Sends "paused".
//   fs-after-rename   the rename happens, then the process hangs before anything else.
//   fs-before-write   the temp file is open (created) but nothing is written into it.
//   fs-loop           writes tagged values back to back until killed. Sends "writing".
//   sqlite-mid-txn    an open write transaction (BEGIN IMMEDIATE) has replaced the record and
//                     spilled thousands of new pages into the WAL; not committed. Sends "paused".
//   sqlite-loop       writes tagged values back to back through the sqlite store until killed.
//   fs-set / sqlite-set  one normal write, then exit 0 (the "next writer").

import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import { openStore } from "../stores.mjs";
import { send } from "./lib.mjs";

const { mode, dir, path, key, value } = JSON.parse(process.argv[2]);
const hang = () => setInterval(() => {}, 1 << 30);
/** Tells the parent, then blocks this thread for good: the parent kills us here. */
function stop(details) {
  send({ t: "paused", ...details });
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
}

function tagged(seq) {
  const payload = randomBytes(200 + (seq % 700)).toString("base64");
  return {
    v: 1,
    accessKeyId: `ASIACRASH${String(seq).padStart(11, "0")}`,
    secretAccessKey: "crash-writer-value-not-a-secret-00000000",
    cachedAt: Date.now(),
    seq,
    payload,
    sum: createHash("sha256").update(`${seq}:${payload}`).digest("hex"),
  };
}

if (mode.startsWith("fs-")) {
  const store = await openStore({ kind: "fs", dir });
  if (mode === "fs-before-rename" || mode === "fs-after-rename") {
    // Every way the adapter might rename (write-file-atomic uses the callback form).
    const before = mode === "fs-before-rename";
    const { rename, renameSync } = fs;
    const renameP = fs.promises.rename;
    fs.rename = (from, to, callback) => {
      if (before) stop({ temp: from });
      rename(from, to, (error) => stop({ renamed: !error, callbackPending: typeof callback === "function" }));
    };
    fs.renameSync = (from, to) => {
      if (before) stop({ temp: from });
      renameSync(from, to);
      stop({ renamed: true });
    };
    fs.promises.rename = async (from, to) => {
      if (before) stop({ temp: from });
      await renameP(from, to);
      stop({ renamed: true });
    };
    await store.set(key, value, 3600);
  } else if (mode === "fs-before-write") {
    fs.write = () => stop({});
    // The store writes its temp file through a FileHandle: stop once it is created.
    const open = fs.promises.open;
    fs.promises.open = async (...args) => {
      const handle = await open(...args);
      stop({});
      return handle;
    };
    await store.set(key, value, 3600);
  } else if (mode === "fs-loop") {
    send({ t: "writing" });
    for (let seq = 0; ; seq++) await store.set(key, tagged(seq), 3600);
  } else if (mode === "fs-set") {
    await store.set(key, value, 3600);
    send({ t: "done" });
    process.exit(0);
  }
} else if (mode === "sqlite-mid-txn") {
  const { default: Database } = await import("better-sqlite3");
  const db = new Database(path, { timeout: 2000 });
  // A tiny page cache: the transaction's pages spill into the WAL before any commit.
  db.pragma("cache_size = 8");
  db.exec("BEGIN IMMEDIATE");
  db.prepare("UPDATE entries SET value = ? WHERE key = ?").run(JSON.stringify(value), key);
  const filler = db.prepare("INSERT INTO entries (key, value, expires_at) VALUES (?, ?, NULL)");
  for (let i = 0; i < 3000; i++) filler.run(`filler-${i}`, "x".repeat(400));
  send({ t: "paused" });
  hang();
} else if (mode === "sqlite-loop") {
  const store = await openStore({ kind: "sqlite", path });
  send({ t: "writing" });
  for (let seq = 0; ; seq++) await store.set(key, tagged(seq), 3600);
} else if (mode === "sqlite-set") {
  const store = await openStore({ kind: "sqlite", path });
  await store.set(key, value, 3600);
  send({ t: "done" });
  process.exit(0);
}
