// One member of the herd: builds the credential provider from the backend config the
// way the example worker does, resolves credentials once, reports, exits.
//
//   HERD_CACHE_URL=none|memory:|file:///dir|sqlite:///path.db|redis://... node bench/herd-child.mjs
//   HERD_PROVIDER=preset (default: the example's preset) | sdk-defaults (fromCache around
//     the SDK's own fromInstanceMetadata() with no options; with `none`, the SDK alone)
//
// Prints one JSON line: { ok, ttfcMs, cpuMs, expiredOnArrival, maxRssKiB, events, error }.
// ttfcMs counts from process start (performance.timeOrigin), node start-up included;
// cpuMs is this process's user + system CPU time up to its first credential.
import { performance } from "node:perf_hooks";
import { createCredentials } from "../examples/sqs-consumer/src/credentials.mjs";

// Settings arrive by environment, as they would in a deployed worker.
const { env } = process;
const url = env.HERD_CACHE_URL ?? "none";
const sdkDefaults = env.HERD_PROVIDER === "sdk-defaults";
const number = (/** @type {string | undefined} */ text) => (text ? Number(text) : undefined);

/** @type {Record<string, unknown>} */
const out = { ok: false };
/** @type {string[]} credcache events, in order, to explain a surprising fetch */
const events = [];
/** @param {import("@credcache/core").CacheEvent} event */
const onEvent = (event) => {
  const detail =
    event.type === "refresh-start"
      ? `:${event.reason}${event.background ? ":bg" : ""}`
      : event.type === "hit"
        ? `:${event.layer}:${event.window}`
        : event.type === "cache-error"
          ? `:${event.operation}:${event.error.message.slice(0, 80)}`
          : event.type === "lock-waited"
            ? `:${event.outcome}`
            : event.type === "refresh-failure"
              ? `:${event.error.message.slice(0, 80)}`
              : "";
  events.push(`${event.type}${detail}`);
};

/** The SDK's instance-metadata provider exactly as a new user writes it, alone or cached. */
async function sdkDefaultsProvider() {
  const { fromInstanceMetadata } = await import("@aws-sdk/credential-providers");
  if (url === "none") return { provider: fromInstanceMetadata(), close: async () => {} };
  const core = await import("@credcache/core");
  const { createCache } = await import("@credcache/config");
  const cache = await createCache(url);
  const provider = core.fromCache({
    provider: fromInstanceMetadata(),
    cache,
    key: core.instanceMetadataKey(),
    onEvent,
  });
  return {
    provider,
    close: async () => {
      await provider.close();
      await cache.close?.();
    },
  };
}

try {
  const credentials = sdkDefaults
    ? await sdkDefaultsProvider()
    : await createCredentials({
        backend: url === "none" ? { kind: "none" } : { kind: "url", url },
        refresh: {
          advisoryRefreshMs: number(env.CREDCACHE_ADVISORY_REFRESH_MS),
          mandatoryRefreshMs: number(env.CREDCACHE_MANDATORY_REFRESH_MS),
        },
        onEvent,
      });
  const identity = await credentials.provider();
  out.ttfcMs = Math.round(performance.now() * 10) / 10;
  const cpu = process.cpuUsage();
  out.cpuMs = Math.round((cpu.user + cpu.system) / 100) / 10;
  const expiration = identity.expiration?.getTime();
  out.expiredOnArrival = expiration !== undefined && expiration <= Date.now();
  out.accessKeyId = identity.accessKeyId;
  out.expiration = expiration;
  await credentials.close();
  out.ok = !out.expiredOnArrival;
} catch (error) {
  out.error = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
out.events = events;
out.maxRssKiB = process.resourceUsage().maxRSS;
process.stdout.write(`${JSON.stringify(out)}\n`);
setTimeout(() => process.exit(0), 3_000).unref();
