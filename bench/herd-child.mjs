// One member of the herd: builds the credential provider from the backend config the
// way the example worker does, resolves credentials once, reports, exits.
//
//   HERD_CACHE_URL=none|memory:|file:///dir|sqlite:///path.db|redis://... node bench/herd-child.mjs
//
// Prints one JSON line: { ok, ttfcMs, expiredOnArrival, maxRssKiB, events, error }.
// ttfcMs counts from process start (performance.timeOrigin), node start-up included.
import { performance } from "node:perf_hooks";
import { createCredentials } from "../examples/sqs-consumer/src/credentials.mjs";

// Settings arrive by environment, as they would in a deployed worker.
const { env } = process;
const url = env.HERD_CACHE_URL ?? "none";
const number = (/** @type {string | undefined} */ text) => (text ? Number(text) : undefined);

/** @type {Record<string, unknown>} */
const out = { ok: false };
/** @type {string[]} credcache events, in order, to explain a surprising fetch */
const events = [];
try {
  const credentials = await createCredentials({
    backend: url === "none" ? { kind: "none" } : { kind: "url", url },
    refresh: {
      advisoryRefreshMs: number(env.CREDCACHE_ADVISORY_REFRESH_MS),
      mandatoryRefreshMs: number(env.CREDCACHE_MANDATORY_REFRESH_MS),
    },
    onEvent: (event) => {
      const detail =
        event.type === "refresh-start"
          ? `:${event.reason}${event.background ? ":bg" : ""}`
          : event.type === "hit"
            ? `:${event.layer}:${event.window}`
            : event.type === "cache-error"
              ? `:${event.operation}:${event.error.message.slice(0, 80)}`
              : event.type === "lock-waited"
                ? `:${event.outcome}`
                : "";
      events.push(`${event.type}${detail}`);
    },
  });
  const identity = await credentials.provider();
  out.ttfcMs = Math.round(performance.now() * 10) / 10;
  const expiration = identity.expiration?.getTime();
  out.expiredOnArrival = expiration !== undefined && expiration <= Date.now();
  await credentials.close();
  out.ok = !out.expiredOnArrival;
} catch (error) {
  out.error = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
out.events = events;
out.maxRssKiB = process.resourceUsage().maxRSS;
process.stdout.write(`${JSON.stringify(out)}\n`);
setTimeout(() => process.exit(0), 3_000).unref();
