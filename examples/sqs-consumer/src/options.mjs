// Command line and environment of the worker. Flags win over the environment, so an
// operator can override a deployed config for one run without editing it.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";

export const USAGE = `Usage: sqs-worker [options]

Consumes an SQS queue. AWS credentials come from the EC2 instance metadata service,
cached by credcache in the store the config names (or by the SDK alone with "none").

Queue:
  --queue-url URL            queue to consume (env SQS_QUEUE_URL)
  --endpoint URL             SQS endpoint (env SQS_ENDPOINT; default: AWS)
  --region NAME              region (env AWS_REGION; default us-east-1)

Credential cache (pick one; flags win over the environment):
  --cache-url URL            memory:, file:///dir, sqlite:///path.db, redis://host:port, or none
                             (env CREDCACHE_URL); or serve: no cache in the worker, credentials
                             from "credcache serve" through the SDK's container provider
                             (AWS_CONTAINER_CREDENTIALS_FULL_URI, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE)
  --config PATH              JSON in the Laravel config/cache.php style:
                             { "default": "file", "stores": { "file": { "driver": "file", "dir": "..." } } }
                             (env CREDCACHE_CONFIG)
  --store NAME               with --config: use this store instead of "default" (env CREDCACHE_STORE)

Lifetime (like Laravel's queue:work):
  --once                     process one message, then exit
  --max-messages N           process N messages, then exit
  --stop-when-empty          exit when a receive finds the queue empty
  --max-time SECONDS         exit after this long, whatever is left

Tuning:
  --wait-time-seconds N      long-poll wait per receive (default 20, or 1 with --stop-when-empty)
  --visibility-timeout N     seconds a received message stays hidden (default: the queue's)
  --auth-error-timeout-ms N  pause after a credential error before polling again (default 10000)
  --imds-timeout-ms N        IMDS request timeout (default 1000, the SDK's)
  --imds-max-retries N       IMDS retries (default 2 with a cache, from core's presets; 0, the SDK's, with none)

Environment only: CREDCACHE_CACHE_TIMEOUT_MS (longest store call, default 1000),
CREDCACHE_ADVISORY_REFRESH_MS and CREDCACHE_MANDATORY_REFRESH_MS (refresh windows).

Output:
  --report PATH              write the JSON report there instead of to stdout
  --verbose                  log credcache events to stderr
  --help
`;

/** A usage error: the worker prints it with the usage and exits with status 2. */
export class UsageError extends Error {
  name = "UsageError";
}

const FLAGS = {
  "queue-url": { type: "string" },
  endpoint: { type: "string" },
  region: { type: "string" },
  "cache-url": { type: "string" },
  config: { type: "string" },
  store: { type: "string" },
  once: { type: "boolean" },
  "max-messages": { type: "string" },
  "stop-when-empty": { type: "boolean" },
  "max-time": { type: "string" },
  "wait-time-seconds": { type: "string" },
  "visibility-timeout": { type: "string" },
  "auth-error-timeout-ms": { type: "string" },
  "imds-timeout-ms": { type: "string" },
  "imds-max-retries": { type: "string" },
  report: { type: "string" },
  verbose: { type: "boolean" },
  help: { type: "boolean" },
};

/**
 * @param {string | undefined} text
 * @param {string} name
 * @param {{ min?: number, max?: number }} [range]
 * @returns {number | undefined}
 */
function integer(text, name, { min = 0, max = Number.MAX_SAFE_INTEGER } = {}) {
  if (text === undefined || text === "") return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`${name} must be an integer from ${min} to ${max}, got "${text}"`);
  }
  return n;
}

/**
 * The cache backend: `none` (the SDK alone), `serve` (the SDK's container provider, pointed
 * at `credcache serve`), a URL, or a Laravel-style config file.
 *
 * @typedef {{ kind: "none" }
 *   | { kind: "serve" }
 *   | { kind: "url", url: string }
 *   | { kind: "config", path: string, config: object, store?: string }} Backend
 */

/**
 * @param {Record<string, string | undefined>} env
 * @param {{ "cache-url"?: string, config?: string, store?: string }} flags
 * @returns {Backend}
 */
function pickBackend(flags, env) {
  const fromFlags = flags["cache-url"] !== undefined || flags.config !== undefined;
  const url = fromFlags ? flags["cache-url"] : env.CREDCACHE_URL || undefined;
  const configPath = fromFlags ? flags.config : env.CREDCACHE_CONFIG || undefined;
  const store = flags.store ?? (env.CREDCACHE_STORE || undefined);
  const where = fromFlags ? "--cache-url and --config" : "CREDCACHE_URL and CREDCACHE_CONFIG";
  if (url !== undefined && configPath !== undefined) {
    throw new UsageError(`${where} are both set; set one of them`);
  }
  if (store !== undefined && configPath === undefined) {
    throw new UsageError("--store / CREDCACHE_STORE names a store of a config file; pass --config too");
  }
  if (configPath !== undefined) {
    const path = resolve(configPath);
    let config;
    try {
      config = JSON.parse(readFileSync(path, "utf8"));
    } catch (error) {
      throw new UsageError(`cannot read the cache config ${path}: ${/** @type {Error} */ (error).message}`);
    }
    return { kind: "config", path, config, ...(store !== undefined && { store }) };
  }
  if (url === undefined || url.trim().toLowerCase() === "none") return { kind: "none" };
  if (url.trim().toLowerCase() === "serve") {
    if (!env.AWS_CONTAINER_CREDENTIALS_FULL_URI) {
      throw new UsageError(
        "the serve backend needs AWS_CONTAINER_CREDENTIALS_FULL_URI (and AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE) pointing at credcache serve",
      );
    }
    return { kind: "serve" };
  }
  return { kind: "url", url: url.trim() };
}

/**
 * Everything the worker needs to know, from argv and the environment.
 *
 * @param {string[]} argv
 * @param {Record<string, string | undefined>} env
 */
export function parseWorkerOptions(argv, env) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: /** @type {any} */ (FLAGS), strict: true });
  } catch (error) {
    throw new UsageError(/** @type {Error} */ (error).message);
  }
  const flags = /** @type {Record<string, string | boolean | undefined>} */ (parsed.values);
  const str = (/** @type {string} */ name) => /** @type {string | undefined} */ (flags[name]);
  if (flags.help) return { help: true };

  const queueUrl = str("queue-url") ?? env.SQS_QUEUE_URL;
  if (!queueUrl) throw new UsageError("no queue: pass --queue-url or set SQS_QUEUE_URL");
  const once = flags.once === true;
  const maxMessages = integer(str("max-messages"), "--max-messages", { min: 1 });
  if (once && maxMessages !== undefined) throw new UsageError("--once and --max-messages are exclusive");
  const stopWhenEmpty = flags["stop-when-empty"] === true;

  return {
    help: false,
    queueUrl,
    endpoint: str("endpoint") ?? (env.SQS_ENDPOINT || undefined),
    region: str("region") ?? (env.AWS_REGION || "us-east-1"),
    backend: pickBackend(/** @type {any} */ (flags), env),
    maxMessages: once ? 1 : maxMessages,
    stopWhenEmpty,
    maxTimeMs: (integer(str("max-time"), "--max-time", { min: 1 }) ?? 0) * 1000 || undefined,
    waitTimeSeconds:
      integer(str("wait-time-seconds"), "--wait-time-seconds", { max: 20 }) ?? (stopWhenEmpty ? 1 : 20),
    visibilityTimeout: integer(str("visibility-timeout"), "--visibility-timeout", { max: 43_200 }),
    authErrorTimeoutMs: integer(str("auth-error-timeout-ms"), "--auth-error-timeout-ms") ?? 10_000,
    imds: {
      timeout: integer(str("imds-timeout-ms"), "--imds-timeout-ms", { min: 1 }),
      maxRetries: integer(str("imds-max-retries"), "--imds-max-retries", { max: 10 }),
    },
    /** fromCache tuning; the refresh windows are shortened only by benchmarks that compress time. */
    refresh: {
      advisoryRefreshMs: integer(env.CREDCACHE_ADVISORY_REFRESH_MS, "CREDCACHE_ADVISORY_REFRESH_MS"),
      mandatoryRefreshMs: integer(env.CREDCACHE_MANDATORY_REFRESH_MS, "CREDCACHE_MANDATORY_REFRESH_MS"),
      cacheTimeoutMs: integer(env.CREDCACHE_CACHE_TIMEOUT_MS, "CREDCACHE_CACHE_TIMEOUT_MS", { min: 1 }),
    },
    reportPath: str("report"),
    verbose: flags.verbose === true,
  };
}
