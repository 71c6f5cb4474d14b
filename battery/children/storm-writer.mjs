// One writer of the writer storm: writes values tagged with its id and a checksum to one key,
// reads the key back after every write, and counts what it saw. Never prints a value.
//
// commands: { cmd: "prepare", id, spec, key } -> { t: "prepared", id, ok }
//           { cmd: "storm", id, spec, key, writer, writers, writes, startAt, stopAt }
//   -> { t: "stormed", id, writes, writeErrors, reads, readErrors, missing, torn, foreign, fromOthers, sample }

import { createHash, randomBytes } from "node:crypto";
import { openStore } from "../stores.mjs";
import { describeError, onCommand, send } from "./lib.mjs";

// Every adapter loaded before "ready": no timed storm pays for a first import.
await Promise.all(
  ["@credcache/fs", "@credcache/sqlite", "@credcache/keyv", "keyv", "@keyv/redis"].map((m) => import(m)),
);

const stores = new Map();
async function storeFor(spec) {
  const id = JSON.stringify(spec);
  if (!stores.has(id)) stores.set(id, await openStore(spec));
  return stores.get(id);
}

const checksum = (writer, seq, payload) =>
  createHash("sha256").update(`${writer}:${seq}:${payload}`).digest("hex");

onCommand(async (command) => {
  if (command.cmd === "exit") {
    for (const store of stores.values()) await store.close?.();
    process.exit(0);
  }
  if (command.cmd === "prepare") {
    // Open the store and touch it once (connect, create the file or the schema).
    const store = await storeFor(command.spec);
    try {
      await store.get(command.key);
      send({ t: "prepared", id: command.id, ok: true });
    } catch (error) {
      send({ t: "prepared", id: command.id, ok: false, error: describeError(error) });
    }
    return;
  }
  if (command.cmd !== "storm") return;
  const { spec, key, writer, writers, writes } = command;
  const store = await storeFor(spec);
  const tally = {
    writes: 0,
    writeErrors: 0,
    reads: 0,
    readErrors: 0,
    missing: 0,
    torn: 0,
    foreign: 0,
    fromOthers: 0,
  };
  const errors = [];
  let wrote = false;
  // Start together.
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, command.startAt - Date.now())));
  for (let seq = 0; seq < writes; seq++) {
    // A time cap: on a slow machine the storm stops early and says how much ran.
    if (command.stopAt && Date.now() >= command.stopAt) break;
    const payload = randomBytes(64 + ((seq * 37) % 900)).toString("base64");
    const value = {
      v: 1,
      accessKeyId: `ASIASTORM${String(writer).padStart(4, "0")}${String(seq).padStart(7, "0")}`,
      secretAccessKey: "storm-writer-value-not-a-secret-0000000",
      cachedAt: Date.now(),
      writer,
      seq,
      payload,
      sum: checksum(writer, seq, payload),
    };
    try {
      await store.set(key, value, 3600);
      tally.writes += 1;
      wrote = true;
    } catch (error) {
      tally.writeErrors += 1;
      if (errors.length < 3) errors.push(describeError(error));
    }
    let got;
    try {
      got = await store.get(key);
      tally.reads += 1;
    } catch (error) {
      tally.readErrors += 1;
      if (errors.length < 3) errors.push(describeError(error));
      continue;
    }
    if (got === undefined || got === null) {
      // Once anyone has written, the key must never be missing.
      if (wrote) tally.missing += 1;
      continue;
    }
    const ok =
      typeof got === "object" &&
      typeof got.payload === "string" &&
      Number.isInteger(got.writer) &&
      Number.isInteger(got.seq) &&
      got.sum === checksum(got.writer, got.seq, got.payload);
    if (!ok) {
      tally.torn += 1;
    } else if (got.writer < 0 || got.writer >= writers) {
      tally.foreign += 1;
    } else if (got.writer !== writer) {
      tally.fromOthers += 1;
    }
  }
  send({ t: "stormed", id: command.id, ...tally, errors });
});

send({ t: "ready", pid: process.pid });
