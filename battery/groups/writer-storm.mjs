// Writer storm (fault 6): many processes write and read one key at once, on the fs, sqlite and
// keyv+redis stores. Every value carries its writer's id and a checksum; every read is checked.
// Zero torn reads, zero foreign values, and the key never goes missing once written.

import { join } from "node:path";
import { allReady, expect, startGroup } from "../harness.mjs";
import { setting } from "../settings.mjs";
import { REDIS_URL } from "../stores.mjs";

const g = startGroup("writer-storm");
const WRITERS = Number(setting("BATTERY_STORM_WRITERS")) || 64;
// 64 x 500 writes (each followed by a read) per store is the target. Each store also has a
// time cap, so that on a slow or shared machine the storm stops early instead of blowing the
// battery's budget; the table then says how many writes ran.
const WRITES = Number(setting("BATTERY_STORM_WRITES")) || 500;
const CAP_MS = Number(setting("BATTERY_STORM_CAP_MS")) || 20_000;
const dir = g.tmp("stores", { mode: 0o700 });
const specs = {
  fs: { kind: "fs", dir: join(dir, "fs") },
  sqlite: { kind: "sqlite", path: join(dir, "cache.db") },
  "keyv+redis": { kind: "redis", url: REDIS_URL, namespace: `battery-storm-${g.runId}` },
};

const writers = Array.from({ length: WRITERS }, () =>
  g.spawn("storm-writer.mjs", { label: "writer", timeoutMs: 600_000 }),
);
const readyMs = await allReady(g, writers, 90_000, `${WRITERS} writers`);
console.log(`${WRITERS} writers ready in ${(readyMs / 1000).toFixed(1)} s`);

let nextId = 0;
for (const [label, spec] of Object.entries(specs)) {
  await g.check(`${label}: ${WRITERS} processes x ${WRITES} writes+reads of one key`, async (c) => {
    const key = `storm-${label}-${g.runId}`;
    const prepared = await Promise.all(
      writers.map((w) => {
        const id = ++nextId;
        w.send({ cmd: "prepare", id, spec, key });
        return w.waitFor((m) => m.t === "prepared" && m.id === id, 120_000, "the store to open");
      }),
    );
    const unprepared = prepared.filter((p) => !p.ok);
    expect(
      unprepared.length === 0,
      () => `${unprepared.length} writers could not open the store: ${unprepared[0].error.message}`,
    );
    const startAt = Date.now() + 300;
    const stopAt = startAt + CAP_MS;
    const ids = writers.map((w, writer) => {
      const id = ++nextId;
      w.send({ cmd: "storm", id, spec, key, writer, writers: WRITERS, writes: WRITES, startAt, stopAt });
      return id;
    });
    const t0 = Date.now();
    const results = await Promise.all(
      writers.map((w, i) =>
        w.waitFor((m) => m.t === "stormed" && m.id === ids[i], 240_000, "the storm to end"),
      ),
    );
    const seconds = (Date.now() - t0) / 1000;
    const sum = (field) => results.reduce((n, r) => n + r[field], 0);
    c.attempt(sum("reads"));
    const torn = sum("torn");
    const foreign = sum("foreign");
    const missing = sum("missing");
    const writeErrors = sum("writeErrors");
    if (torn + foreign > 0) {
      c.fail(`${torn} torn reads, ${foreign} foreign values`);
      c.failures += torn + foreign - 1;
    }
    c.lost(missing);
    const readErrors = sum("readErrors");
    const firstError = results.flatMap((r) => r.errors)[0];
    const planned = WRITERS * WRITES;
    const ran = sum("writes") + writeErrors;
    c.note =
      `${ran < planned ? `time cap ${CAP_MS / 1000} s reached: ran ${ran} of ${planned} writes; ` : ""}` +
      `${sum("writes")} writes, ${sum("reads")} reads in ${seconds.toFixed(1)} s; ${sum("fromOthers")} reads saw another writer's value; ` +
      `${writeErrors} write errors, ${readErrors} read errors${firstError ? ` (e.g. ${firstError.name}: ${String(firstError.message).slice(0, 80)})` : ""}`;
    expect(sum("fromOthers") > 0, "no reader ever saw another writer's value: the writers did not overlap");
  });
}

for (const w of writers) w.send({ cmd: "exit" });
await Promise.all(writers.map((w) => w.stop(5000)));
g.finish();
