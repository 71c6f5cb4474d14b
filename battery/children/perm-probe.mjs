// Creates everything a store creates (under the umask the parent chose) and reports the mode
// of each file and directory, including the short-lived ones: the temp file (caught at the
// rename) and the lock mutex directory (caught at its removal).
//
// argv[2]: JSON { kind: "fs" | "sqlite", dir?, path?, key }
// -> { t: "modes", entries: [{ what, path, mode, type }] }

import fs from "node:fs";
import { dirname, join } from "node:path";
import { openStore } from "../stores.mjs";
import { send } from "./lib.mjs";

const { kind, dir, path, key, root } = JSON.parse(process.argv[2]);
const entries = [];
const note = (what, file) => {
  try {
    const st = fs.lstatSync(file);
    entries.push({ what, path: file, mode: st.mode & 0o7777, type: st.isDirectory() ? "dir" : "file" });
  } catch (error) {
    entries.push({ what, path: file, missing: error.code });
  }
};
const record = {
  v: 1,
  accessKeyId: "ASIAPERMPROBE0000000",
  secretAccessKey: "perm-probe-value-not-a-secret-0000000000",
  cachedAt: Date.now(),
};

if (kind === "fs") {
  // Short-lived paths, seen at the moment they exist.
  const { rename, renameSync } = fs;
  const renameP = fs.promises.rename;
  fs.rename = (from, to, callback) => {
    note("temp file (at rename)", from);
    rename(from, to, callback);
  };
  fs.renameSync = (from, to) => {
    note("temp file (at rename)", from);
    renameSync(from, to);
  };
  fs.promises.rename = (from, to) => {
    note("temp file (at rename)", from);
    return renameP(from, to);
  };
  const rmdir = fs.rmdirSync;
  fs.rmdirSync = (target, ...rest) => {
    if (String(target).endsWith(".lock")) note("lock mutex dir (at removal)", target);
    rmdir(target, ...rest);
  };
  const store = await openStore({ kind: "fs", dir });
  const lock = await store.acquireLock(key, { ttlMs: 5000 });
  for (const name of fs.readdirSync(dir)) note("while the lock is held", join(dir, name));
  await store.set(key, record, 3600);
  await lock?.release();
  await store.get(key);
  await store.prune();
} else {
  const store = await openStore({ kind: "sqlite", path });
  await store.set(key, record, 3600);
  const lock = await store.acquireLock(key, { ttlMs: 5000 });
  await store.get(key);
  for (const name of fs.readdirSync(dirname(path))) note("while open", join(dirname(path), name));
  await lock?.release();
  await store.close();
}

// Everything under the root that this process created, after the fact.
const walk = (at) => {
  for (const name of fs.readdirSync(at)) {
    const file = join(at, name);
    note("after", file);
    if (fs.lstatSync(file).isDirectory()) walk(file);
  }
};
walk(root);
send({ t: "modes", entries });
process.exit(0);
