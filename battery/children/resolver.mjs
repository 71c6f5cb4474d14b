// A process that resolves credentials the way an application does: fromCache over a real
// store, with the real SDK fromInstanceMetadata as the source (IMDS = the emulator, through
// AWS_EC2_METADATA_SERVICE_ENDPOINT). Each resolve command builds a fresh fromCache and a
// fresh SDK provider, like a new short-lived process, over this process's one store.
//
// argv[2]: JSON { store?: spec, preload?, imdsTimeoutMs?, lockTtlMs?, lockWaitMs?, cacheTimeoutMs?,
//                 retryBaseMs?, retryMaxMs? }
// commands: { cmd: "resolve", id, key, store? } -> { t: "resolved", id, ok, ms, creds | error, events }
//           { cmd: "loop", id, key, store?, untilMs } -> { t: "looped", id, done, failed, errors, ... }

import { fromInstanceMetadata } from "@aws-sdk/credential-providers";
import { fromCache, parseRecord } from "@credcache/core";
import { openStore } from "../stores.mjs";
import { describeError, digest, observer, onCommand, send } from "./lib.mjs";

const config = JSON.parse(process.argv[2] ?? "{}");
// Workers that will use several stores load every adapter now, before they say "ready", so
// that no timed phase pays for a first import.
if (config.preload) {
  // Named one by one, so a bundle of this script (a child of another user runs one) holds them.
  await Promise.all([
    import("@credcache/fs"),
    import("@credcache/sqlite"),
    import("@credcache/keyv"),
    import("keyv"),
    import("@keyv/redis"),
  ]);
}
const log = observer(`[pid ${process.pid}] `);
/** One store per spec, opened once, as an application keeps one. */
const stores = new Map();
async function storeFor(spec) {
  const id = JSON.stringify(spec);
  if (!stores.has(id)) stores.set(id, await openStore(spec));
  return stores.get(id);
}
try {
  if (config.store) await storeFor(config.store);
} catch (error) {
  // A store that cannot even be built is an application bug, not an outage; say so.
  log.error(error);
  send({ t: "store-error", error: describeError(error) });
  process.exit(2);
}

/** Event types that the parent waits for. */
const FORWARD = new Set(["lock-acquired", "lock-busy", "refresh-start", "lock-waited", "refresh-failure"]);

function provider(store, key, events) {
  return fromCache({
    provider: fromInstanceMetadata({
      timeout: config.imdsTimeoutMs ?? 1000,
      maxRetries: 0,
      logger: log.logger,
    }),
    cache: store,
    key,
    ...(config.lockTtlMs !== undefined && { lockTtlMs: config.lockTtlMs }),
    ...(config.lockWaitMs !== undefined && { lockWaitMs: config.lockWaitMs }),
    ...(config.cacheTimeoutMs !== undefined && { cacheTimeoutMs: config.cacheTimeoutMs }),
    ...(config.retryBaseMs !== undefined && { retryBaseMs: config.retryBaseMs }),
    ...(config.retryMaxMs !== undefined && { retryMaxMs: config.retryMaxMs }),
    logger: log.logger,
    onEvent(event) {
      log.onEvent(event);
      events.push(event.type);
      if (event.type === "cache-error" && events.problems.length < 5) {
        events.problems.push(`${event.operation}: ${event.error.message}`);
      }
      if (FORWARD.has(event.type))
        send({ t: "event", type: event.type, ...(event.outcome && { outcome: event.outcome }) });
    },
  });
}

const inspected = new Set();

async function resolveOnce(spec, key, store) {
  const events = [];
  events.problems = [];
  const p = provider(store ?? (await storeFor(spec)), key, events);
  const t0 = performance.now();
  try {
    const identity = await p();
    const ms = performance.now() - t0;
    // What console.log would print, once per key (enough for the secret scan, less log).
    if (!inspected.has(key)) {
      inspected.add(key);
      log.inspect(identity);
      log.inspect(p);
    }
    return { ok: true, ms, creds: digest(identity), events, problems: events.problems };
  } catch (error) {
    log.error(error);
    return {
      ok: false,
      ms: performance.now() - t0,
      error: describeError(error),
      events,
      problems: events.problems,
    };
  } finally {
    p.close();
  }
}

onCommand(async (command) => {
  if (command.cmd === "resolve") {
    send({
      t: "resolved",
      id: command.id,
      ...(await resolveOnce(command.store ?? config.store, command.key)),
    });
  } else if (command.cmd === "loop") {
    // Resolve again and again until untilMs (epoch ms): a worker busy while the store breaks.
    let done = 0;
    let failed = 0;
    const errors = [];
    const keys = new Set();
    const cacheErrors = { count: 0 };
    const spec = command.store ?? config.store;
    while (Date.now() < command.untilMs) {
      // freshStore: a new store each time, as a new short-lived process would open it.
      const fresh = command.freshStore ? await openStore(spec) : undefined;
      const result = await resolveOnce(spec, command.key, fresh).finally(() => fresh?.close?.());
      done += 1;
      if (!result.ok) {
        failed += 1;
        if (errors.length < 3) errors.push(result.error);
      } else {
        keys.add(result.creds.accessKeyId);
      }
      cacheErrors.count += result.events.filter((e) => e === "cache-error").length;
      if (command.pauseMs) await new Promise((resolve) => setTimeout(resolve, command.pauseMs));
    }
    send({
      t: "looped",
      id: command.id,
      done,
      failed,
      errors,
      accessKeyIds: [...keys],
      cacheErrors: cacheErrors.count,
    });
  } else if (command.cmd === "peek") {
    // What a new process would find in the store now.
    const store = await openStore(command.store ?? config.store);
    try {
      const parsed = parseRecord(await store.get(command.key));
      send({ t: "peeked", id: command.id, ok: parsed.ok, accessKeyId: parsed.record?.accessKeyId });
    } catch (error) {
      log.error(error);
      send({ t: "peeked", id: command.id, ok: false, error: describeError(error) });
    } finally {
      await store.close?.();
    }
  } else if (command.cmd === "checkpoint") {
    // Moves everything out of the WAL into the database file, as a quiet period would.
    const { default: Database } = await import("better-sqlite3");
    const db = new Database(command.path, { timeout: 2000 });
    try {
      const [result] = db.pragma("wal_checkpoint(TRUNCATE)");
      send({ t: "checkpointed", id: command.id, result });
    } finally {
      db.close();
    }
  } else if (command.cmd === "exit") {
    for (const store of stores.values()) await store.close?.();
    process.exit(0);
  }
});

send({ t: "ready", pid: process.pid });
