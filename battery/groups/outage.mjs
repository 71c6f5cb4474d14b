// Source outage (fault 4). IMDS answers 429, 500 or hangs for 10 simulated minutes.
// - While a cached record is valid: zero failed resolutions, and exactly the source attempts
//   that fromCache's documented backoff allows (retryBaseMs doubling up to retryMaxMs, 50-100%
//   jitter), with `random` injected so the schedule is exact.
// - With an expired record: static stability extends it with a warning when staleIfError is
//   on, and a clear error when it is off.
// In process, with an injected clock, through real stores and the IMDS emulator.
// - Mixed callers, shared backoff (real processes, real clock): one process's failed attempt
//   is recorded in the store; a second fromCache process and `credcache process` runs are
//   answered from the valid set and do not ask the failing source within that backoff.

import { join } from "node:path";
import {
  backoffMs,
  fromCache,
  instanceMetadataKey,
  parseRefreshState,
  REFRESH_DEFAULTS,
  refreshStateKey,
} from "@credcache/core";
import { startImdsEmulator } from "@credcache/imds-emulator";
import {
  CheckFailure,
  expect,
  fakeCredentials,
  imdsSource,
  manualClock,
  startGroup,
  waitUntil,
} from "../harness.mjs";
import { setting } from "../settings.mjs";
import { openStore, REDIS_URL } from "../stores.mjs";

const g = startGroup("outage");
const MIN = 60_000;
const TICK = 1000;
/** fromCache's defaults, from core (never restated here), as the schedule below needs them. */
const DEFAULTS = {
  advisoryMs: REFRESH_DEFAULTS.advisoryRefreshMs,
  mandatoryMs: REFRESH_DEFAULTS.mandatoryRefreshMs,
  policy: { retryBaseMs: REFRESH_DEFAULTS.retryBaseMs, retryMaxMs: REFRESH_DEFAULTS.retryMaxMs },
};

const FAULTS = {
  "500 on credentials": { credentials: { status: 500 } },
  "429 on token": { token: { status: 429 } },
  "hang on token": { token: { hang: true } },
};

/**
 * fromCache's documented schedule, tick by tick: which ticks make a source attempt while
 * every attempt fails and the record (expiring at `exp`) stays in hand.
 */
function expectedAttempts({ t0, ticks, exp, r, staleIfError = false, backoffWhenExpired = false }) {
  const { advisoryMs, mandatoryMs, policy } = DEFAULTS;
  const advisoryPoint = mandatoryMs + (1 - r) * (advisoryMs - mandatoryMs);
  let freshUntil = exp - advisoryPoint;
  let mandatoryAt = exp - mandatoryMs;
  let expiresAt = exp;
  let extended = false;
  let nextAttemptAt = 0;
  let failures = 0;
  const attempts = [];
  for (let i = 0; i <= ticks; i++) {
    const now = t0 + i * TICK;
    const window =
      now >= expiresAt
        ? "expired"
        : now >= mandatoryAt
          ? "mandatory"
          : now >= freshUntil
            ? "advisory"
            : "fresh";
    if (window === "fresh") continue;
    const gated = window !== "expired" || (backoffWhenExpired && !staleIfError);
    if (gated && (now < nextAttemptAt || (extended && window === "mandatory"))) continue;
    attempts.push(now);
    // With no valid set in hand the lock holder tries again within its lease (holderRetries).
    if (window === "expired" && backoffWhenExpired) {
      for (let i = 0; i < REFRESH_DEFAULTS.holderRetries; i++) attempts.push(now);
    }
    if (gated) {
      failures += 1;
      nextAttemptAt = now + backoffMs(failures, policy, () => r);
    } else if (staleIfError) {
      const until = now + 5 * MIN + Math.floor(r * 5 * MIN);
      expiresAt = until;
      freshUntil = 0;
      mandatoryAt = 0;
      extended = true;
      nextAttemptAt = until;
    }
  }
  return attempts;
}

async function backend(kind, dir, clock) {
  if (kind === "fs") return openStore({ kind: "fs", dir: join(dir, "fs") }, { clock });
  if (kind === "sqlite") return openStore({ kind: "sqlite", path: join(dir, "cache.db") }, { clock });
  return openStore({ kind: "redis", url: REDIS_URL, namespace: `battery-outage-${g.runId}` });
}

/**
 * Counts the store and source calls in flight, so that the tick loop can wait for a background
 * refresh to finish before it moves the clock (a background refresh runs on its own promise).
 */
function inFlight() {
  let pending = 0;
  const track = async (run) => {
    pending += 1;
    try {
      return await run();
    } finally {
      pending -= 1;
    }
  };
  return {
    pending: () => pending,
    store(inner) {
      const wrapped = {
        get: (key) => track(() => inner.get(key)),
        set: (key, value, ttl) => track(() => inner.set(key, value, ttl)),
        remove: (key) => track(() => inner.remove(key)),
        close: () => inner.close?.(),
      };
      if (inner.acquireLock) {
        wrapped.acquireLock = (key, opts) =>
          track(async () => {
            const lock = await inner.acquireLock(key, opts);
            return lock && { takenOver: lock.takenOver, release: () => track(() => lock.release()) };
          });
      }
      return wrapped;
    },
    source: (inner) => () => track(() => inner()),
  };
}

/** Quiet: nothing in flight across two turns of the event loop. */
async function settle(flight) {
  const deadline = Date.now() + 5000;
  for (;;) {
    await new Promise((resolve) => setImmediate(resolve));
    if (flight.pending() === 0) {
      await new Promise((resolve) => setImmediate(resolve));
      if (flight.pending() === 0) return;
    }
    expect(Date.now() < deadline, "a refresh did not settle within 5 s");
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/** Calls the provider once per tick; waits for any refresh it started to finish before moving on. */
async function tickLoop({ provider, flight, clock, t0, ticks, onResult }) {
  for (let i = 0; i <= ticks; i++) {
    clock.t = t0 + i * TICK;
    let outcome;
    try {
      outcome = { identity: await provider() };
    } catch (error) {
      g.seenError(error);
      outcome = { error };
    }
    await settle(flight);
    onResult(outcome, clock.t);
  }
}

const kinds = ["fs", "sqlite", "keyv+redis"];
const dir = g.tmp("stores", { mode: 0o700 });

/**
 * `fromCache` (no proactive refresh: only the backoff schedule decides when to ask) over a
 * source and a store that `flight` watches, its log and events observed by the battery.
 */
function watchedProvider({ source, store, flight, seen, ...options }) {
  return fromCache({
    provider: flight.source(source),
    cache: flight.store(store),
    proactiveRefresh: false,
    logger: seen.logger,
    onEvent: seen.onEvent,
    ...options,
  });
}

/** Once a resolver child is ready, asks it for `key`'s credentials and waits for its answer. */
async function resolveIn(child, id, key, what) {
  await child.waitType("ready", 60_000);
  child.send({ cmd: "resolve", id, key });
  return child.waitFor((m) => m.t === "resolved" && m.id === id, 30_000, what);
}

// ---- a valid record in the store, the source down for 10 minutes ----

for (const kind of kinds) {
  await g.check(`${kind}: valid record, 10 min outage, attempts follow the backoff`, async (c) => {
    const runs = [];
    const plans = Object.entries(FAULTS).map(([name, faults]) => ({ name, faults, r: 0 }));
    plans.push({ name: "500 on credentials", faults: FAULTS["500 on credentials"], r: 0.999 });
    for (const plan of plans) {
      await c.trial(async () => {
        const t0 = Math.floor(Date.now() / 1000) * 1000;
        const clock = manualClock(t0);
        const imds = await startImdsEmulator({ clock });
        const store = await backend(kind, dir, clock);
        try {
          const key = `outage-valid-${plan.name}-${plan.r}-${g.runId}`.replace(/\s/g, "_");
          const seeded = fakeCredentials("seed");
          g.secrets([seeded.secretAccessKey, seeded.sessionToken]);
          const exp = t0 + 11 * MIN;
          await store.set(key, { v: 1, ...seeded, expiration: exp, cachedAt: t0 - 5 * 3_600_000 }, 11 * 60);
          imds.setFaults(plan.faults);
          const source = imdsSource(imds.url, { timeoutMs: 150 });
          const seen = g.observe();
          const flight = inFlight();
          const provider = watchedProvider({ source, store, flight, seen, key, clock, random: () => plan.r });
          let failed = 0;
          let wrong = 0;
          const ticks = 600;
          await tickLoop({
            provider,
            flight,
            clock,
            t0,
            ticks,
            onResult: (o) => {
              if (o.error) failed += 1;
              else if (o.identity.accessKeyId !== seeded.accessKeyId) wrong += 1;
            },
          });
          provider.close();
          const expected = expectedAttempts({ t0, ticks, exp, r: plan.r });
          const starts = seen.events.filter((e) => e.type === "refresh-start");
          const actual = starts.length;
          if (setting("BATTERY_DEBUG")) {
            console.log(
              plan.name,
              plan.r,
              "actual",
              starts.map((e) => `${(e.time - t0) / 1000}${e.background ? "b" : ""}`).join(" "),
            );
            console.log(plan.name, plan.r, "model ", expected.map((t) => (t - t0) / 1000).join(" "));
          }
          runs.push(`${plan.name} r=${plan.r}: ${actual}/${expected.length}`);
          expect(failed === 0, `${plan.name}: ${failed} of ${ticks + 1} resolutions failed`);
          expect(wrong === 0, `${plan.name}: ${wrong} resolutions returned other credentials`);
          expect(
            source.calls() === expected.length,
            `${plan.name} (r=${plan.r}): ${source.calls()} source attempts, the backoff schedule allows ${expected.length}`,
          );
          expect(imds.stats.credentialFetches === 0, "the emulator served credentials during the outage");
        } finally {
          await store.close?.();
          g.secrets(imds.secretsIssued());
          await imds.close();
        }
      });
    }
    c.note = `attempts actual/schedule over 600 s: ${runs.join("; ")}`;
  });
}

// ---- the credentials in hand expire during the outage ----

let hammering;

for (const staleIfError of [true, false]) {
  await g.check(
    `fs: credentials in hand expire during the outage, staleIfError ${staleIfError ? "on: extended with a warning" : "off: a clear error"}`,
    async (c) => {
      await c.trial(async () => {
        const t0 = Math.floor(Date.now() / 1000) * 1000;
        const clock = manualClock(t0);
        const imds = await startImdsEmulator({ clock, lifetimeMs: 20 * MIN, leadMs: 5 * MIN });
        const store = await backend("fs", dir, clock);
        try {
          const key = `outage-expiring-${staleIfError}-${g.runId}`;
          const source = imdsSource(imds.url, { timeoutMs: 150 });
          const seen = g.observe();
          const flight = inFlight();
          const provider = watchedProvider({
            source,
            store,
            flight,
            seen,
            key,
            clock,
            random: () => 0,
            staleIfError,
            // A caller without a valid set waits (polling in real time) up to lockWaitMs for the
            // backoff to end; the injected clock stands still between ticks, so each wait would
            // last the whole 12 s. Patience 0: a caller inside the backoff fails at once, which
            // is what the schedule below counts.
            lockWaitMs: 0,
          });
          const first = await provider();
          g.secrets(imds.secretsIssued());
          const exp = first.expiration.getTime();
          imds.setFaults(FAULTS["500 on credentials"]);
          const start = exp - 60_000; // one minute before expiry, for ten minutes
          const callsBefore = source.calls();
          let served = 0;
          let staleAfterExpiry = 0;
          const errors = [];
          await tickLoop({
            provider,
            flight,
            clock,
            t0: start,
            ticks: 600,
            onResult: (o, now) => {
              if (o.error) errors.push(o.error);
              else {
                served += 1;
                if (o.identity.expiration.getTime() <= now) staleAfterExpiry += 1;
              }
            },
          });
          provider.close();
          const attempts = source.calls() - callsBefore;
          const afterExpiry = 600 - (exp - start) / TICK + 1;
          if (staleIfError) {
            const expected = expectedAttempts({ t0: start, ticks: 600, exp, r: 0, staleIfError: true });
            c.note = `601 calls: ${served} served, ${errors.length} failed; ${attempts} source attempts (schedule ${expected.length}); ${seen.events.filter((e) => e.type === "extended").length} extensions`;
            expect(errors.length === 0, () => `${errors.length} resolutions failed: ${errors[0]?.message}`);
            expect(staleAfterExpiry === 0, "credentials were handed out with an expiration in the past");
            expect(
              seen.events.some((e) => e.type === "extended"),
              "no extended event",
            );
            expect(
              seen.logs.some((l) => l.level === "warn" && /expiration extension/.test(l.line)),
              "no static-stability warning was logged",
            );
            // At most one process's schedule: the shared backoff also holds an expired set
            // back (it is extended again without asking), so it may be fewer.
            expect(
              attempts >= 1 && attempts <= expected.length,
              `${attempts} source attempts, the schedule allows ${expected.length}`,
            );
          } else {
            c.note = `601 calls: ${served} served before expiry, ${errors.length} clear errors after`;
            hammering = {
              attempts,
              afterExpiry,
              // +1: the first call after expiry asks the source at once (nothing is left to
              // serve); only failures with expired credentials in hand start the fast-fail backoff.
              // Each attempt with nothing valid in hand is 1 + holderRetries source calls.
              allowed:
                expectedAttempts({ t0: start, ticks: 600, exp, r: 0, backoffWhenExpired: true }).length + 1,
            };
            expect(
              errors.length === afterExpiry,
              `${errors.length} errors, expected ${afterExpiry} (every call after expiry)`,
            );
            expect(staleAfterExpiry === 0, "expired credentials were served");
            for (const error of errors.slice(0, 5)) {
              // Typed, and it stops an SDK provider chain (like the SDK's CredentialsProviderError).
              expect(
                error.tryNextLink === false && typeof error.code === "string",
                `a ${error.name} without a code and tryNextLink: false`,
              );
              expect(
                /expired/.test(error.message) && /staleIfError/.test(error.message),
                `the error does not say the credentials expired and how to keep them: ${error.message}`,
              );
            }
          }
        } finally {
          await store.close?.();
          g.secrets(imds.secretsIssued());
          await imds.close();
        }
      });
    },
  );
}

await g.check(
  "fs: credentials expired, outage, staleIfError off: the source is not asked on every call",
  (c) => {
    c.attempt();
    expect(hammering, "the run above did not finish");
    c.note = `${hammering.attempts} source attempts in 601 calls (${hammering.afterExpiry} of them after expiry); the backoff schedule would allow ${hammering.allowed}`;
    expect(
      hammering.attempts <= hammering.allowed,
      `once the credentials expired, every call went to the failing source (${hammering.attempts} attempts in 10 simulated minutes, backoff allows ${hammering.allowed})`,
    );
  },
);

// ---- a new process: only an expired record in the store ----

/**
 * A new process (fresh fromCache) during the outage, when the store's record has expired:
 * `planted` keeps it in the store past its expiry (TTL 0), isolating what core does with it;
 * `natural` has another process write it through fromCache and lets the clock pass its expiry,
 * which also needs the store to keep it.
 */
async function newProcessAfterExpiry(kind, how) {
  const t0 = Math.floor(Date.now() / 1000) * 1000;
  const clock = manualClock(t0);
  const imds = await startImdsEmulator({ clock, lifetimeMs: 20 * MIN, leadMs: 5 * MIN });
  const store = await backend(kind, dir, clock);
  const key = `outage-new-process-${how}-${g.runId}`;
  try {
    let stored;
    if (how === "planted") {
      const seeded = fakeCredentials("expired");
      g.secrets([seeded.secretAccessKey, seeded.sessionToken]);
      await store.set(key, { v: 1, ...seeded, expiration: t0 - MIN, cachedAt: t0 - 6 * 3_600_000 }, 0);
      stored = seeded.accessKeyId;
    } else {
      const writer = fromCache({
        provider: imdsSource(imds.url),
        cache: store,
        key,
        clock,
        proactiveRefresh: false,
      });
      stored = (await writer()).accessKeyId;
      writer.close();
      clock.advance(21 * MIN);
    }
    imds.setFaults(FAULTS["500 on credentials"]);
    const seen = g.observe();
    const provider = fromCache({
      provider: imdsSource(imds.url, { timeoutMs: 150 }),
      cache: store,
      key,
      clock,
      staleIfError: true,
      proactiveRefresh: false,
      logger: seen.logger,
      onEvent: seen.onEvent,
    });
    try {
      const identity = await provider();
      expect(identity.accessKeyId === stored, "served other credentials");
      expect(
        seen.events.some((e) => e.type === "extended"),
        "no extended event",
      );
      return "extended";
    } catch (error) {
      g.seenError(error);
      if (error instanceof CheckFailure) throw error;
      throw new CheckFailure(
        `${how}: static stability does not reach a new process: the caller gets ${error.name}: ${error.message.slice(0, 90)}`,
      );
    } finally {
      provider.close();
    }
  } finally {
    await store.close?.();
    g.secrets(imds.secretsIssued());
    await imds.close();
  }
}

for (const kind of kinds) {
  await g.check(
    `${kind}: new process, store record expired, outage, staleIfError on: extended`,
    async (c) => {
      const outcomes = [];
      for (const how of ["planted", "natural"]) {
        outcomes.push(`${how}: ${(await c.trial(() => newProcessAfterExpiry(kind, how))) ?? "error"}`);
      }
      c.note = `${outcomes.join("; ")} (planted = kept past expiry with TTL 0; natural = written by fromCache, clock moved past expiry)`;
    },
  );
}

// ---- mixed callers, real processes: the backoff one process recorded holds for the others ----

/** The store as a `--cache` URL for `credcache process`, and as a spec for the battery's children. */
function mixedStore(kind) {
  if (kind === "fs") {
    const path = join(dir, "fs-mixed");
    return { spec: { kind: "fs", dir: path }, url: `file://${path}` };
  }
  if (kind === "sqlite") {
    const path = join(dir, "mixed.db");
    return { spec: { kind: "sqlite", path }, url: `sqlite://${path}` };
  }
  const namespace = `battery-outage-mixed-${g.runId}`;
  return { spec: { kind: "redis", url: REDIS_URL, namespace }, url: `${REDIS_URL}?namespace=${namespace}` };
}

/** The first process backs off for a minute, so the others' start-up on a loaded host fits inside it. */
const FIRST_BACKOFF_MS = 60_000;

async function sharedBackoff(kind) {
  const imds = await startImdsEmulator();
  const env = { AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url };
  // The key `credcache process --source imds` uses on this host, so every caller shares it.
  const key = instanceMetadataKey({ env });
  const { spec, url } = mixedStore(kind);
  const store = await openStore(spec);
  try {
    const seeded = fakeCredentials("mixed");
    g.secrets([seeded.secretAccessKey, seeded.sessionToken]);
    const now = Date.now();
    // 9 min left: inside fromCache's mandatory window (10 min) and the CLI's (20 min), above the CLI's 6 min floor.
    await store.set(
      key,
      { v: 1, ...seeded, expiration: now + 9 * MIN, cachedAt: now - 5 * 3_600_000 },
      10 * 60,
    );
    await store.remove(refreshStateKey(key));
    imds.setFaults({ any: { status: 500 } });
    const spawnResolver = (extra = {}) =>
      g.spawn("resolver.mjs", {
        args: [JSON.stringify({ store: spec, ...extra })],
        env,
        label: `mixed-${kind.replace(/\W/g, "")}`,
      });
    // 1. One process is served the set and tries a refresh behind it, which fails.
    const first = spawnResolver({ retryBaseMs: FIRST_BACKOFF_MS, retryMaxMs: FIRST_BACKOFF_MS });
    const r1 = await resolveIn(first, 1, key, "the first process's answer");
    expect(
      r1.ok && r1.creds.accessKeyId === seeded.accessKeyId,
      "the first process was not served the valid set",
    );
    let state;
    await waitUntil(
      async () => {
        state = parseRefreshState(await store.get(refreshStateKey(key)));
        return (state?.failures ?? 0) >= 1;
      },
      30_000,
      "the first process to record its failed attempt in the store",
      100,
    );
    const requestsAfterFirst = imds.stats.requests.total;
    expect(requestsAfterFirst > 0, "the first process never asked the source");
    // 2. A second fromCache process and two `credcache process` runs, inside that backoff.
    const second = spawnResolver();
    const cli = [0, 1].map(() =>
      g.spawn("cli-process.mjs", {
        args: [JSON.stringify({ cache: url })],
        env,
        label: `cli-${kind.replace(/\W/g, "")}`,
      }),
    );
    const r2 = await resolveIn(second, 2, key, "the second process's answer");
    const runs = await Promise.all(cli.map((c) => c.waitType("cli", 60_000)));
    await Promise.all([second.stop?.(), ...cli.map((c) => c.exited)]);
    const inside = Date.now() < state.nextAttemptAt;
    const asked = imds.stats.requests.total - requestsAfterFirst;
    expect(
      r2.ok && r2.creds.accessKeyId === seeded.accessKeyId,
      "the second process was not served the valid set",
    );
    for (const run of runs) {
      expect(
        run.code === 0 && run.creds?.accessKeyId === seeded.accessKeyId,
        `a credcache process run was not served the valid set (exit ${run.code}: ${run.warnings[0] ?? ""})`,
      );
    }
    expect(inside, "the backoff ran out before the other callers finished; the check proves nothing");
    expect(
      asked === 0,
      `${asked} requests reached the failing source within the backoff another process recorded (${r2.events.filter((e) => e === "refresh-start").length} from the second process)`,
    );
    first.kill();
    return `failure recorded, next attempt in ${Math.round((state.nextAttemptAt - Date.now()) / 1000)} s; second process ${Math.round(r2.ms)} ms, CLI runs ${runs.map((r) => `${Math.round(r.ms)} ms`).join(", ")}; ${asked} requests at IMDS meanwhile`;
  } finally {
    await store.remove(key).catch(() => {});
    await store.remove(refreshStateKey(key)).catch(() => {});
    await store.close?.();
    g.secrets(imds.secretsIssued());
    await imds.close();
  }
}

for (const kind of kinds) {
  await g.check(
    `${kind}: mixed callers (fromCache processes, credcache process runs) honour one shared backoff`,
    async (c) => {
      c.note = (await c.trial(() => sharedBackoff(kind))) ?? "";
    },
  );
}

g.finish();
