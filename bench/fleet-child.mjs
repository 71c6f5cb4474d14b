// One short-lived process of the fleet benchmark: resolves credentials once, reports, exits.
//
//   FLEET_CACHE_URL=none|redis://... FLEET_KEY=<cache key> node bench/fleet-child.mjs
//
// The source is the SDK's fromInstanceMetadata() (AWS_EC2_METADATA_SERVICE_ENDPOINT points
// at the emulator); with a cache URL it is wrapped in fromCache under FLEET_KEY, which the
// parent makes per host (instance credentials) or one for the fleet (role credentials).
// Prints one JSON line: { ok, ttfcMs, cacheErrors, error }; ttfcMs counts from process start;
// cacheErrors names the store operations that failed or timed out (then the source is asked).
import { performance } from "node:perf_hooks";
import { fromInstanceMetadata } from "@aws-sdk/credential-providers";

// Settings arrive by environment, as they would in a deployed worker.
const { env } = process;
const url = env.FLEET_CACHE_URL ?? "none";
const out = { ok: false, cacheErrors: [] };
try {
  const source = fromInstanceMetadata();
  if (url === "none") {
    await source();
  } else {
    const { createCache } = await import("@credcache/config");
    const { fromCache } = await import("@credcache/core");
    const cache = await createCache(url);
    const provider = fromCache({
      provider: source,
      cache,
      key: env.FLEET_KEY,
      onEvent: (event) => {
        if (event.type === "cache-error") out.cacheErrors.push(event.operation);
      },
    });
    await provider();
    out.ttfcMs = performance.now();
    await provider.close();
    await cache.close?.();
  }
  out.ttfcMs ??= performance.now();
  out.ok = true;
} catch (error) {
  out.error = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
process.stdout.write(`${JSON.stringify(out)}\n`);
setTimeout(() => process.exit(0), 3_000).unref();
