import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { type ImdsEmulator, startImdsEmulator } from "@credcache/imds-emulator";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { openStore } from "../../battery/stores.mjs";
import { itWithRedis, TEST_REDIS_URL } from "../support/redis.mjs";

/**
 * Refresh coordination between real processes, on each real store: the shared backoff,
 * the hand-over after a failed or dead holder, and fenced writes after a paused one.
 * Each child resolves once through fromCache and the real SDK against the emulator.
 */

const CHILD = fileURLToPath(new URL("./child.mjs", import.meta.url));
const root = mkdtempSync(join(tmpdir(), "credcache-coordination-"));
let emulator: ImdsEmulator;

type Line = { type: string; [field: string]: unknown };
interface Child {
  proc: ChildProcess;
  lines: Line[];
  /** Resolves with the first line of this type (`event:<type>` for an event). */
  waitFor(type: string): Promise<Line>;
  done: Promise<{ code: number | null; lines: Line[] }>;
}

function start(spec: Record<string, unknown>): Child {
  const proc = spawn(process.execPath, [CHILD, JSON.stringify(spec)], {
    env: { ...process.env, AWS_EC2_METADATA_SERVICE_ENDPOINT: emulator.url },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: Line[] = [];
  const waiters: Array<{ type: string; resolve: (line: Line) => void }> = [];
  let stderr = "";
  proc.stderr!.on("data", (d) => {
    stderr += d;
  });
  createInterface({ input: proc.stdout! }).on("line", (text) => {
    const line = JSON.parse(text) as Line;
    lines.push(line);
    for (const w of waiters.filter((w) => matches(line, w.type))) w.resolve(line);
  });
  const done = new Promise<{ code: number | null; lines: Line[] }>((resolve) => {
    proc.on("close", (code) => resolve({ code, lines }));
  });
  return {
    proc,
    lines,
    done: done.then((r) => {
      if (r.code !== 0 && r.code !== 1) throw new Error(`child exited ${r.code}: ${stderr}`);
      return r;
    }),
    waitFor: (type) =>
      new Promise((resolve) => {
        const seen = lines.find((l) => matches(l, type));
        if (seen) resolve(seen);
        else waiters.push({ type, resolve });
      }),
  };
}

const matches = (line: Line, type: string) =>
  type.startsWith("event:")
    ? line.type === "event" && (line.event as { type: string }).type === type.slice(6)
    : line.type === type;
const resultOf = (lines: Line[]) => lines.find((l) => l.type === "result" || l.type === "error")!;
const events = (lines: Line[], type: string) =>
  lines.filter((l) => l.type === "event" && (l.event as { type: string }).type === type);
const credentialRequests = () => emulator.stats.requests.credentials;

beforeAll(async () => {
  emulator = await startImdsEmulator();
});
afterAll(async () => {
  await emulator.close();
  rmSync(root, { recursive: true, force: true });
});
beforeEach(() => {
  emulator.setFaults(undefined);
});

const stores = [
  { name: "file", spec: (id: string) => ({ kind: "fs", dir: join(root, `fs-${id}`) }) },
  { name: "sqlite", spec: (id: string) => ({ kind: "sqlite", path: join(root, `db-${id}.sqlite`) }) },
  {
    name: "redis",
    spec: (id: string) => ({ kind: "redis", url: TEST_REDIS_URL, namespace: `coordination-${id}` }),
  },
] as const;

/**
 * Hand-over settings: a 60 s lease (a waiter that waited for it to run out would time the
 * test out), a 200 ms pause between shared attempts, one try per holder.
 */
const HANDOVER_OPTIONS = {
  lockTtlMs: 60_000,
  lockWaitMs: 60_000,
  retryBaseMs: 200,
  retryMaxMs: 200,
  holderRetries: 0,
};

/** Starts a holder, and once it holds the lock a waiter (with `HANDOVER_OPTIONS`); resolves when both exit. */
async function holderThenWaiter(
  base: { store: string; key: string },
  holderOptions: typeof HANDOVER_OPTIONS,
) {
  const holder = start({ ...base, options: holderOptions });
  await holder.waitFor("event:lock-acquired");
  const waiter = start({ ...base, options: HANDOVER_OPTIONS });
  return Promise.all([holder.done, waiter.done]);
}

describe.each(stores)("refresh coordination across processes: $name store", ({ name, spec }) => {
  // The Redis cases need the test run's redis-server: without one they skip (fail under CI).
  const itOn = name === "redis" ? itWithRedis : it;
  const fresh = () => {
    const id = randomBytes(4).toString("hex");
    return { store: spec(id), key: `coordination-${id}` };
  };

  itOn(
    "a failure recorded by one process: a new process does not ask the failing source within the backoff",
    async () => {
      const base = fresh();
      emulator.setFaults({ credentials: { status: 500 } });
      const options = { retryBaseMs: 60_000, lockWaitMs: 2_000, holderRetries: 0 };
      const a = await start({ ...base, options }).done;
      expect(a.code).toBe(1);
      expect(events(a.lines, "refresh-failure")).toHaveLength(1);
      const before = credentialRequests();
      const b = await start({ ...base, options }).done;
      expect(b.code).toBe(1);
      expect(resultOf(b.lines).message).toMatch(/next attempt \(by any process\)/);
      expect(credentialRequests(), "process b sent no credential request").toBe(before);
      expect(events(b.lines, "refresh-start")).toHaveLength(0);
    },
  );

  itOn(
    "a holder that fails hands over at once: the waiter gets credentials long before the lease would end",
    async () => {
      const base = fresh();
      // The first credential request hangs past the SDK's 1 s timeout; the rest answer.
      emulator.setFaults({ credentials: { hang: true, count: 1 } });
      // A holder with no patience of its own answers with its failure (with patience it
      // waits for the next shared attempt: the next test).
      const [h, w] = await holderThenWaiter(base, { ...HANDOVER_OPTIONS, lockWaitMs: 0 });
      expect(resultOf(h.lines), "the holder's one try timed out").toMatchObject({ type: "error" });
      expect(resultOf(w.lines), "the waiter took over and got credentials").toMatchObject({ type: "result" });
      expect(
        events(w.lines, "lock-acquired")[0]?.event,
        "a released lock, not a lease run out",
      ).toMatchObject({
        takenOver: false,
      });
    },
    30_000,
  );

  itOn(
    "a holder whose try failed waits, within its patience, for the next shared attempt and gets credentials",
    async () => {
      const base = fresh();
      emulator.setFaults({ credentials: { hang: true, count: 1 } });
      const before = credentialRequests();
      const [h, w] = await holderThenWaiter(base, HANDOVER_OPTIONS);
      expect(events(h.lines, "refresh-failure"), "the holder's one try timed out").toHaveLength(1);
      expect(resultOf(h.lines), "and then it got credentials").toMatchObject({ type: "result" });
      expect(resultOf(w.lines)).toMatchObject({ type: "result", accessKeyId: resultOf(h.lines).accessKeyId });
      expect(credentialRequests() - before, "the hung try and one more").toBe(2);
    },
    30_000,
  );

  itOn(
    "a holder killed mid-fetch on this machine is taken over at once, not after its lease",
    async () => {
      const base = fresh();
      emulator.setFaults({ credentials: { hang: true, count: 1 } });
      const options = { lockTtlMs: 120_000, lockWaitMs: 120_000, holderRetries: 0 };
      emulator.resetStats();
      const holder = start({ ...base, options: { ...options } });
      // Wait until the holder marked its attempt and is stuck on the hung request.
      const hangsBefore = emulator.stats.hangs;
      const deadline = Date.now() + 15_000;
      const store = await openStore(base.store);
      try {
        while (
          Date.now() < deadline &&
          (!(await store.get(`${base.key}#refresh`)) || emulator.stats.hangs === hangsBefore)
        ) {
          await new Promise((r) => setTimeout(r, 20));
        }
      } finally {
        await store.close?.();
      }
      holder.proc.kill("SIGKILL");
      await holder.done.catch(() => {});
      const waiter = await start({ ...base, options }).done;
      expect(resultOf(waiter.lines), JSON.stringify(resultOf(waiter.lines))).toMatchObject({
        type: "result",
      });
    },
    30_000,
  );

  itOn(
    "fencing: a holder paused after its fetch never replaces the newer set its successor wrote",
    async () => {
      const base = fresh();
      const options = { lockTtlMs: 1_000, holderRetries: 0 };
      const holder = start({ ...base, options, pauseAfterFetch: true });
      const fetched = await holder.waitFor("fetched");
      // The holder is stopped past its lease; the source rotates; a successor refreshes.
      await new Promise((r) => setTimeout(r, 1_500));
      const newer = emulator.rotate();
      expect(newer.accessKeyId).not.toBe(fetched.accessKeyId);
      const successor = await start({ ...base, options }).done;
      expect(resultOf(successor.lines)).toMatchObject({ type: "result", accessKeyId: newer.accessKeyId });
      holder.proc.kill("SIGCONT");
      const resumed = await holder.done;
      expect(resultOf(resumed.lines), "the resumed holder is served the newer set too").toMatchObject({
        accessKeyId: newer.accessKeyId,
      });
      const later = await start({ ...base, options }).done;
      expect(resultOf(later.lines), "no later process is served the older set").toMatchObject({
        accessKeyId: newer.accessKeyId,
      });
    },
    30_000,
  );
});
