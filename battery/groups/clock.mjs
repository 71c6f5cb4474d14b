// Clock trouble (fault 5): credentials that arrive already expired are rejected; credentials
// that expire in 1 s are used and then refreshed, never served after their expiry; a clock
// that jumps forward by an hour leads to a refresh, not a crash (and back, to nothing bad).
// In process, injected clock, real stores, the IMDS emulator (for the jump) on the same clock.

import { join } from "node:path";
import { fromCache, parseRecord } from "@credcache/core";
import { startImdsEmulator } from "@credcache/imds-emulator";
import { expect, fakeCredentials, imdsSource, manualClock, startGroup } from "../harness.mjs";
import { openStore, REDIS_URL } from "../stores.mjs";

const g = startGroup("clock");
const HOUR = 3_600_000;
const dir = g.tmp("stores", { mode: 0o700 });

function storeFor(kind, clock) {
  if (kind === "fs") return openStore({ kind: "fs", dir: join(dir, "fs") }, { clock });
  if (kind === "sqlite") return openStore({ kind: "sqlite", path: join(dir, "cache.db") }, { clock });
  return openStore({ kind: "redis", url: REDIS_URL, namespace: `battery-clock-${g.runId}` });
}

/** `fromCache` over one store on the manual clock, its log and events watched by the battery. */
function observedProvider({ source, store, key, clock, seen }) {
  return fromCache({
    provider: source,
    cache: store,
    key,
    clock,
    logger: seen.logger,
    onEvent: seen.onEvent,
  });
}

/** A source that hands out the given expirations (relative to the clock), one per call. */
function scriptedSource(clock, offsets) {
  let calls = 0;
  const source = async () => {
    const offset = offsets[Math.min(calls, offsets.length - 1)];
    calls += 1;
    const creds = { ...fakeCredentials(`c${calls}`), expiration: new Date(clock.now() + offset) };
    g.secrets([creds.secretAccessKey, creds.sessionToken]);
    return creds;
  };
  source.calls = () => calls;
  return source;
}

async function attempt(provider) {
  try {
    const identity = await provider();
    g.seen(identity);
    return { identity };
  } catch (error) {
    g.seenError(error);
    return { error };
  }
}

for (const kind of ["fs", "sqlite", "keyv+redis"]) {
  await g.check(`${kind}: credentials already expired on arrival are rejected`, async (c) => {
    for (const offset of [-60_000, -1, 0]) {
      await c.trial(async () => {
        const clock = manualClock();
        const store = await storeFor(kind, clock);
        const key = `clock-expired-${offset}-${g.runId}`;
        const seen = g.observe();
        const source = scriptedSource(clock, [offset]);
        const provider = observedProvider({ source, store, key, clock, seen });
        try {
          const result = await attempt(provider);
          expect(
            result.error,
            `credentials expiring at now${offset >= 0 ? "+" : ""}${offset} ms were accepted`,
          );
          expect(
            /expired/.test(result.error.message),
            `the error does not say why: ${result.error.name}: ${result.error.message}`,
          );
          expect((await store.get(key)) === undefined, "the expired credentials were written to the store");
          // With good credentials in hand, an expired set from the source changes nothing.
          const good = scriptedSource(clock, [6 * HOUR, -60_000]);
          const p2 = fromCache({
            provider: good,
            cache: store,
            key: `${key}-held`,
            clock,
            onEvent: seen.onEvent,
          });
          const first = await p2();
          clock.advance(6 * HOUR - 9 * 60_000); // inside the mandatory window
          const second = await attempt(p2);
          p2.close();
          expect(
            !second.error,
            () => `with valid credentials in hand the caller got ${second.error?.message}`,
          );
          expect(second.identity.accessKeyId === first.accessKeyId, "the expired set replaced the valid one");
        } finally {
          provider.close();
          await store.close?.();
        }
      });
    }
  });

  await g.check(
    `${kind}: credentials that expire in 1 s are refreshed, never served after expiry`,
    async (c) => {
      await c.trial(async () => {
        const clock = manualClock();
        const store = await storeFor(kind, clock);
        const key = `clock-1s-${g.runId}`;
        const seen = g.observe();
        const source = scriptedSource(clock, [1000, 6 * HOUR]);
        const provider = observedProvider({ source, store, key, clock, seen });
        try {
          const served = [];
          for (let step = 0; step <= 12; step++) {
            const now = clock.now();
            const result = await attempt(provider);
            expect(!result.error, () => `call at +${step * 250} ms failed: ${result.error?.message}`);
            const exp = result.identity.expiration.getTime();
            expect(
              exp > now,
              `at +${step * 250} ms the caller got credentials that expired ${now - exp} ms earlier`,
            );
            served.push(result.identity.accessKeyId);
            // Another process arriving now must not get the expired set from the store either.
            const other = fromCache({
              provider: scriptedSource(clock, [6 * HOUR]),
              cache: store,
              key,
              clock,
              onEvent: seen.onEvent,
            });
            const viaStore = await attempt(other);
            other.close();
            expect(
              !viaStore.error && viaStore.identity.expiration.getTime() > now,
              "a second process got expired credentials",
            );
            clock.advance(250);
          }
          expect(
            new Set(served).size === 2,
            `expected the short-lived set then one refresh, saw ${new Set(served).size} sets`,
          );
          expect(source.calls() === 2, `expected 2 source calls, saw ${source.calls()}`);
          c.note = `13 calls over 3 s: ${source.calls()} source calls, refreshed at expiry`;
        } finally {
          provider.close();
          await store.close?.();
        }
      });
    },
  );

  await g.check(`${kind}: clock jumps forward 1 h (and back): a refresh, not a crash`, async (c) => {
    await c.trial(async () => {
      const clock = manualClock(Math.floor(Date.now() / 1000) * 1000);
      // One-hour credentials: a one-hour jump lands past their expiry.
      const imds = await startImdsEmulator({ clock, lifetimeMs: HOUR, leadMs: 5 * 60_000 });
      const store = await storeFor(kind, clock);
      const key = `clock-jump-${g.runId}`;
      const seen = g.observe();
      const source = imdsSource(imds.url);
      const provider = observedProvider({ source, store, key, clock, seen });
      try {
        const before = await attempt(provider);
        expect(!before.error, () => `first call failed: ${before.error?.message}`);
        clock.advance(HOUR);
        const after = await attempt(provider);
        g.secrets(imds.secretsIssued());
        expect(!after.error, () => `after the jump the call failed: ${after.error?.message}`);
        expect(after.identity.accessKeyId !== before.identity.accessKeyId, "no refresh after the jump");
        expect(
          after.identity.expiration.getTime() > clock.now(),
          "served expired credentials after the jump",
        );
        const stored = parseRecord(await store.get(key));
        expect(
          stored.ok && stored.record.accessKeyId === after.identity.accessKeyId,
          "the store does not hold the new set",
        );
        // A new process after the jump reads the new set from the store.
        const other = fromCache({ provider: source, cache: store, key, clock, onEvent: seen.onEvent });
        const viaStore = await attempt(other);
        other.close();
        expect(
          viaStore.identity?.accessKeyId === after.identity.accessKeyId,
          "a new process did not get the new set",
        );
        // And back by an hour: still valid credentials, no crash, no extra fetch.
        const calls = source.calls();
        clock.advance(-HOUR);
        const back = await attempt(provider);
        expect(!back.error, () => `after the jump back the call failed: ${back.error?.message}`);
        expect(source.calls() === calls, "the jump back caused a fetch");
        c.note = `${source.calls()} source calls`;
      } finally {
        provider.close();
        await store.close?.();
        g.secrets(imds.secretsIssued());
        await imds.close();
      }
    });
  });
}

g.finish();
