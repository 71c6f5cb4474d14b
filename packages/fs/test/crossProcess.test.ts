import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { fileCache } from "../src/index.js";
import { assertBuilt, collect, lineFrom, runChild, startChild, tempDir } from "./helpers.js";

beforeAll(assertBuilt);

describe("fileCache across real processes", () => {
  it("a reader never sees a torn or foreign value while a writer replaces large values", async () => {
    const dir = join(tempDir(), "cache");
    const stop = join(dir, "..", "stop");
    const reader = startChild("torn.mjs", ["reader", dir, stop]);
    const readerDone = collect(reader);
    await lineFrom(reader, "ready");
    const writer = await runChild("torn.mjs", ["writer", dir, "1500"]);
    expect(writer.stderr).toBe("");
    writeFileSync(stop, "");
    const read = await readerDone;
    expect(read.stderr).toBe("");
    const counts = JSON.parse(read.stdout.trim().split("\n").pop()!);
    const writes = JSON.parse(writer.stdout).writes;
    expect(writes).toBeGreaterThan(1);
    expect(counts.A + counts.B, "values read").toBeGreaterThan(0);
    expect(counts).toMatchObject({ foreign: 0, missing: 0, errors: 0 });
  });

  it("a lock whose holder was SIGKILLed is taken over once its lease has run out", async () => {
    const dir = join(tempDir(), "cache");
    const holder = startChild("hold-lock.mjs", [dir, "refresh", "60000"]);
    const exited = collect(holder);
    expect(await lineFrom(holder, "held")).toBe("held");
    holder.kill("SIGKILL");
    expect((await exited).signal).toBe("SIGKILL");

    // The lease is on the wall clock in the child; here a clock we can move stands in for time passing.
    let offset = 0;
    const store = fileCache({ dir, clock: { now: () => Date.now() + offset } });
    expect(
      await store.acquireLock("refresh", { ttlMs: 1000 }),
      "the dead holder's lease still runs",
    ).toBeUndefined();
    offset = 61_000;
    const lock = await store.acquireLock("refresh", { ttlMs: 1000 });
    expect(lock?.takenOver).toBe(true);
    await lock!.release();
  });

  it("of N processes started together, exactly one acquires the lock", async () => {
    const dir = join(tempDir(), "cache");
    await fileCache({ dir }).get("warm-up");
    const children = Array.from({ length: 4 }, () => startChild("hold-lock.mjs", [dir, "race", "60000"]));
    const done = children.map(collect);
    const answers = await Promise.all(children.map((child) => lineFrom(child, "")));
    for (const child of children) child.kill("SIGKILL");
    await Promise.all(done);
    expect(answers.filter((a) => a === "held")).toHaveLength(1);
    expect(answers.filter((a) => a === "busy")).toHaveLength(3);
  });

  it("a fleet of processes resolving through fromCache calls the source once", async () => {
    const base = tempDir();
    const dir = join(base, "cache");
    const calls = join(base, "calls.log");
    writeFileSync(calls, "");
    const results = await Promise.all(
      Array.from({ length: 4 }, () => runChild("fetch-once.mjs", [dir, calls])),
    );
    for (const result of results) {
      expect(result.stderr).toBe("");
      expect(result.code).toBe(0);
    }
    const keys = new Set(results.map((r) => r.stdout.trim()));
    expect(keys.size, "every process got the same credentials").toBe(1);
    expect(readFileSync(calls, "utf8").trim().split("\n"), "source calls").toHaveLength(1);
  });
});
