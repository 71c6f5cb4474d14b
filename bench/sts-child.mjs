// One process of `pnpm bench:sts`: resolves credentials once, the SDK's default chain alone
// (STS_CACHE_URL=none) or the cached chain over STS_CACHE_URL, and prints one JSON line:
// { ok, ttfcMs, source, key, events, error }. ttfcMs counts from process start, node start-up included.
// The environment (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ENDPOINT_URL_STS) picks web identity.
import { performance } from "node:perf_hooks";

// Settings arrive by environment, as they would in a deployed worker.
const { env } = process;
const url = env.STS_CACHE_URL ?? "none";
const out = { ok: false, events: {} };
/** credcache events by type (cache-error:<operation> apart), to explain a surprising STS call. */
const onEvent = (event) => {
  const name = event.type === "cache-error" ? `cache-error:${event.operation}` : event.type;
  out.events[name] = (out.events[name] ?? 0) + 1;
};
let close = async () => {};
try {
  let provider;
  if (url === "none") {
    const { fromNodeProviderChain } = await import("@aws-sdk/credential-providers");
    provider = fromNodeProviderChain();
    out.source = "sdk";
  } else {
    const core = await import("@credcache/core");
    const { createCache } = await import("@credcache/config");
    const cache = await createCache(url);
    const cached = core.fromCachedNodeProviderChain({ cache, proactiveRefresh: false, onEvent });
    ({ source: out.source, key: out.key } = core.nodeProviderChainSource());
    provider = cached;
    close = async () => {
      await cached.close();
      await cache.close?.();
    };
  }
  const identity = await provider();
  out.ttfcMs = performance.now();
  out.ok = typeof identity.accessKeyId === "string";
} catch (error) {
  out.ttfcMs = performance.now();
  out.error = `${error?.name}: ${String(error?.message).slice(0, 160)}`;
}
await close();
process.stdout.write(`${JSON.stringify(out)}\n`);
process.exit(out.ok ? 0 : 1);
