// A process in the issue-11 herd scenarios (see herd-scenarios.mjs). argv[2] is JSON:
//
//   { mode: "caller", cache, untilMs, everyMs }
//       a long-running process: the instance-metadata preset over `cache`, asked every
//       `everyMs` (jittered) until `untilMs` (epoch ms); reports every call's wait.
//   { mode: "once", cache, lockTtlMs? }
//       a short-lived process: resolves once through the SDK's fromInstanceMetadata()
//       wrapped in fromCache, reports what it was served.
//   { mode: "paused-holder", cache, lockTtlMs }
//       like "once", but after the source answers (before fromCache writes), it prints
//       {"t":"fetched"} and stops itself with SIGSTOP; the parent continues it later.
//
// Prints one JSON line at the end: { ok, accessKeyId, expiration, waitsUs, served, events, error }.
// Events carry their time (epoch ms), so the parent can line up attempts across processes.
// No secret is printed: access key ids only.
import { fromInstanceMetadata } from "@aws-sdk/credential-providers";
import { createCache } from "@credcache/config";
import { fromCache, fromCachedInstanceMetadata, instanceMetadataKey } from "@credcache/core";

const config = JSON.parse(process.argv[2] ?? "{}");
/** @type {Array<Record<string, unknown>>} */
const events = [];
/** @param {import("@credcache/core").CacheEvent} event */
function onEvent(event) {
  if (event.type === "hit" || events.length >= 2000) return;
  events.push({
    type: event.type,
    time: event.time,
    ...("reason" in event && { reason: event.reason }),
    ...("background" in event && { background: event.background }),
    ...("outcome" in event && { outcome: event.outcome }),
    ...("error" in event && { error: event.error.message.slice(0, 120) }),
    ...("accessKeyId" in event && { accessKeyId: event.accessKeyId }),
  });
}
const sleep = (/** @type {number} */ ms) => new Promise((resolve) => setTimeout(resolve, ms));
const print = (/** @type {object} */ line) => process.stdout.write(`${JSON.stringify(line)}\n`);

const cache = await createCache(config.cache);
/** @type {Record<string, unknown>} */
const out = { ok: false, pid: process.pid };
try {
  if (config.mode === "caller") {
    const provider = fromCachedInstanceMetadata({ cache, onEvent });
    /** @type {number[]} */
    const waitsUs = [];
    /** @type {Record<string, number>} */
    const served = {};
    let failures = 0;
    const errors = new Set();
    // Bounded: untilMs, and at most 10 000 calls.
    for (let i = 0; i < 10_000 && Date.now() < config.untilMs; i++) {
      const t = performance.now();
      try {
        const identity = await provider();
        waitsUs.push(Math.round((performance.now() - t) * 10_000) / 10);
        served[identity.accessKeyId] = (served[identity.accessKeyId] ?? 0) + 1;
      } catch (error) {
        failures += 1;
        waitsUs.push(Math.round((performance.now() - t) * 10_000) / 10);
        if (errors.size < 3) errors.add(error instanceof Error ? error.message.slice(0, 160) : String(error));
      }
      await sleep(config.everyMs * (0.5 + Math.random()));
    }
    Object.assign(out, { ok: failures === 0, waitsUs, served, failures, errors: [...errors] });
    await provider.close();
  } else {
    const source = fromInstanceMetadata();
    const paused = config.mode === "paused-holder";
    const provider = fromCache({
      provider: paused
        ? async (options) => {
            const identity = await source(options);
            print({ t: "fetched", accessKeyId: identity.accessKeyId });
            // Stopped between the fetch and fromCache's write: a VM pause, a long GC.
            process.kill(process.pid, "SIGSTOP");
            return identity;
          }
        : source,
      cache,
      key: instanceMetadataKey(),
      ...(config.lockTtlMs !== undefined && { lockTtlMs: config.lockTtlMs }),
      onEvent,
    });
    const identity = await provider();
    out.ok = true;
    out.accessKeyId = identity.accessKeyId;
    out.expiration = identity.expiration?.getTime();
    await provider.close();
  }
} catch (error) {
  out.error = error instanceof Error ? `${error.name}: ${error.message.slice(0, 200)}` : String(error);
}
out.events = events;
await cache.close?.();
print(out);
setTimeout(() => process.exit(0), 2_000).unref();
