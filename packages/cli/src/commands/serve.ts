import { resolve } from "node:path";
import {
  type AwsCredentialIdentity,
  type CachedCredentialProvider,
  type CacheEvent,
  type CredentialCache,
  PROCESS_DEFAULTS,
} from "@credcache/core";
import { integerFlag, parseArgs } from "../args.js";
import { resolveCacheSpec } from "../config.js";
import { CommandFailedError, messageOf, oneLine, UsageError } from "../errors.js";
import type { CommandIo } from "../io.js";
import { type CredentialsFile, readCredentialsFile } from "../serve/credentials.js";
import {
  checkEcsAgentAddress,
  DEFAULT_ECS_AGENT_LISTEN,
  ECS_AGENT_HOST,
  ecsAgentEnvironmentLine,
  ecsAgentRoutes,
  parseEcsAgentListen,
} from "../serve/ecs-agent.js";
import { baseUrl, DEFAULT_LISTEN, type ListenAddress, parseListen } from "../serve/listen.js";
import { ServeMetrics } from "../serve/metrics.js";
import { notifyReady } from "../serve/notify.js";
import { createCredentialServer } from "../serve/server.js";
import { defaultTokenFile, parseGroup, prepareTokenFile, tokenChecker } from "../serve/token.js";
import { createSourceProvider, parseSource } from "../sources.js";
import { closeStore, openStore } from "../store.js";
import { readSourceOptions } from "./process.js";
import { STORE_FLAGS } from "./shared.js";

const SOURCE_FLAGS = ["timeout", "retries", "session-name", "duration", "region"] as const;

const FLAGS = {
  ...STORE_FLAGS,
  source: "string",
  credentials: "string",
  listen: "string",
  "token-file": "string",
  "token-group": "string",
  "ecs-agent": "boolean",
  "print-env": "string",
  "cache-timeout": "string",
  timeout: "string",
  retries: "string",
  "session-name": "string",
  duration: "string",
  region: "string",
  help: "boolean",
} as const;

/**
 * Refresh windows above botocore's: the AWS CLI and boto3 ask their container provider
 * again on every access once fewer than 15 min are left, so the server refreshes (in the
 * background) from 25 min left and hands them a set with more than 15 min whenever the
 * source has one: the same windows `credcache process` uses.
 */
const REFRESH_WINDOWS = {
  advisoryRefreshMs: PROCESS_DEFAULTS.advisoryRefreshMs,
  mandatoryRefreshMs: PROCESS_DEFAULTS.mandatoryRefreshMs,
};

/** How long in-flight requests get to finish after SIGTERM before their sockets are cut. */
const DRAIN_MS = 10_000;

/**
 * `credcache serve`: the container-credentials endpoint (what ECS and EKS Pod Identity
 * offer) on loopback, answered from the shared cache, for every SDK on the host.
 */
export async function run(argv: readonly string[], io: CommandIo): Promise<number> {
  const { flags, positionals } = parseArgs(argv, FLAGS, "serve");
  if (flags.help) {
    io.stdout.write((await import("../help.js")).helpText("serve"));
    return 0;
  }
  if (positionals.length > 0) {
    throw new UsageError(`unexpected argument "${positionals[0]}"; run "credcache serve --help"`);
  }
  const ecsAgent = flags["ecs-agent"];
  if (flags["print-env"] !== undefined && !ecsAgent) {
    throw new UsageError("--print-env prints the ECS-agent mode's variable; use it with --ecs-agent");
  }
  const address = ecsAgent
    ? parseEcsAgentListen(flags.listen ?? DEFAULT_ECS_AGENT_LISTEN)
    : parseListen(flags.listen ?? DEFAULT_LISTEN);
  const file = readCredentialsSetting(flags, io);
  for (const { source } of file.credentials) {
    checkContainerSource(source.kind, address, io.env, ecsAgent);
  }
  const cacheTimeoutMs = integerFlag(flags["cache-timeout"], "cache-timeout", 1, 60_000);
  const tokenPath = flags["token-file"] ?? defaultTokenFile(io.env);
  if (tokenPath === undefined) {
    throw new UsageError(
      "--token-file PATH is required (under systemd, RuntimeDirectory= sets a default of $RUNTIME_DIRECTORY/token)",
    );
  }
  const gid = flags["token-group"] === undefined ? undefined : parseGroup(flags["token-group"]);
  const spec = resolveCacheSpec(flags, io.env, io.cwd);
  const tokenFile = resolve(io.cwd, tokenPath);
  const secret = prepareTokenFile(tokenFile, gid);
  const checkToken = tokenChecker(secret);
  const printEnv = flags["print-env"];
  if (printEnv !== undefined) {
    const names = routeNames(file);
    if (!names.includes(printEnv)) {
      throw new UsageError(`--print-env ${printEnv}: no such credential (${names.join(", ")})`);
    }
    io.stdout.write(ecsAgentEnvironmentLine(secret, printEnv));
    return 0;
  }
  // After --print-env: the line can be made before 169.254.170.2 is set up.
  if (ecsAgent) checkEcsAgentAddress(address);

  // Core scrubs its own messages; an SDK error could still quote a credentials document,
  // so the secrets of the sets served lately are masked in every line as well.
  const recentSecrets: string[] = [];
  const remember = (identity: AwsCredentialIdentity) => {
    for (const secret of [identity.secretAccessKey, identity.sessionToken]) {
      if (secret && !recentSecrets.includes(secret)) recentSecrets.push(secret);
    }
    recentSecrets.splice(0, Math.max(0, recentSecrets.length - 8));
  };
  const log = (line: string) => io.stderr.write(`credcache serve: ${oneLine(line, recentSecrets)}\n`);
  let store: CredentialCache | undefined;
  try {
    store = await openStore(spec);
  } catch (error) {
    // Like `process`: an unusable store must not stop credentials; serve from memory.
    if ((error as { code?: unknown }).code !== "ERR_CREDCACHE_UNAVAILABLE") throw error;
    log(`warning: cache ${spec.label} is unusable, serving without it: ${messageOf(error)}`);
  }

  const providers = new Map<string, CachedCredentialProvider>();
  const routes = new Map<string, { canonical: string; provider: CachedCredentialProvider }>();
  const metrics = new ServeMetrics(providers);
  for (const credential of file.credentials) {
    const provider = createSourceProvider(
      credential.source,
      {
        ...(store && { cache: store }),
        ...REFRESH_WINDOWS,
        ...(cacheTimeoutMs !== undefined && { cacheTimeoutMs }),
        logger: sdkLogger(credential.name, log),
        onEvent: (event) => logEvent(credential.name, event, metrics, log),
      },
      readSourceOptions(credential.flags, credential.source),
    );
    providers.set(credential.name, provider);
    routes.set(credential.name, { canonical: credential.name, provider });
  }
  if (file.defaultName !== undefined && file.defaultName !== "default") {
    routes.set("default", { canonical: file.defaultName, provider: providers.get(file.defaultName)! });
  }

  // Listening for signals from here on: a SIGTERM during the first fetch still stops cleanly.
  const stopped = stopSignal();
  const server = createCredentialServer({
    address,
    routes,
    checkToken,
    ...(ecsAgent && { ecsAgent: ecsAgentRoutes(secret, routes.keys()) }),
    metrics,
    onServed: remember,
    onResolveError: (name, error) => log(`resolving ${name} failed: ${messageOf(error)}`),
  });
  try {
    await listen(server, address);
    const bound = { ...address, port: (server.address() as { port: number }).port };
    // Fetch (or read from the store) once before saying ready, so the first clients do not
    // wait; a SIGTERM meanwhile stops at once rather than after a source that may hang.
    const warmed = Promise.all(
      [...providers].map(async ([name, provider]) => {
        try {
          const identity = await provider();
          remember(identity);
          metrics.expiresAt(name, identity.expiration?.getTime());
        } catch (error) {
          log(`warning: no credentials for ${name} yet: ${messageOf(error)}`);
        }
      }),
    );
    let signal = await Promise.race([warmed.then(() => undefined), stopped.signal]);
    if (signal === undefined) {
      const names = [...routes.keys()].join(",");
      const cache = `cache ${store ? spec.label : "none"}`;
      // In ECS-agent mode the paths are the capabilities: never logged, only how to get one.
      log(
        ecsAgent
          ? `ready on ${baseUrl(bound)} as the ECS agent for {${names}} (${cache}, ids from token file ${tokenFile}; print one with --print-env NAME)`
          : `ready on ${baseUrl(bound)}/creds/{${names}} (${cache}, token file ${tokenFile})`,
      );
      const warning = await notifyReady(io.env);
      if (warning) log(`warning: ${warning}`);
      signal = await stopped.signal;
    }
    log(`${signal}: stopping`);
    await drain(server);
  } finally {
    stopped.dispose();
    server.close();
    await Promise.all([...providers.values()].map((provider) => provider.close()));
    await closeStore(store);
  }
  log("stopped");
  return 0;
}

/** `--credentials FILE`, or the single `--source` served as "default". */
function readCredentialsSetting(
  flags: { source?: string; credentials?: string } & Partial<Record<(typeof SOURCE_FLAGS)[number], string>>,
  io: CommandIo,
): CredentialsFile {
  if (flags.credentials === undefined) {
    const source = parseSource(flags.source);
    const options: Record<string, string> = {};
    for (const name of SOURCE_FLAGS) if (flags[name] !== undefined) options[name] = flags[name];
    readSourceOptions(options, source);
    return { credentials: [{ name: "default", source, flags: options }] };
  }
  const given = [
    flags.source !== undefined && "--source",
    ...SOURCE_FLAGS.filter((n) => flags[n] !== undefined).map((n) => `--${n}`),
  ].filter(Boolean);
  if (given.length > 0) {
    throw new UsageError(
      `${given.join(", ")} cannot be used with --credentials; set them per credential in the file`,
    );
  }
  const file = readCredentialsFile(resolve(io.cwd, flags.credentials));
  for (const credential of file.credentials) readSourceOptions(credential.flags, credential.source);
  return file;
}

/** Every name served: the credentials, and "default" when it is an alias. */
function routeNames(file: CredentialsFile): string[] {
  const names = file.credentials.map((credential) => credential.name);
  if (file.defaultName !== undefined && file.defaultName !== "default") names.push("default");
  return names;
}

function checkContainerSource(
  kind: string,
  address: ListenAddress,
  env: Record<string, string | undefined>,
  ecsAgent: boolean,
): void {
  if (kind !== "container") return;
  const full = env.AWS_CONTAINER_CREDENTIALS_FULL_URI;
  if (!full && !env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI) {
    throw new UsageError(
      "--source container needs AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or AWS_CONTAINER_CREDENTIALS_FULL_URI (set by ECS and EKS Pod Identity)",
    );
  }
  // A server that is its own source would wait on itself until the SDK times out.
  if (full && address.port !== 0 && full.startsWith(baseUrl(address))) {
    throw new UsageError(
      `--source container: AWS_CONTAINER_CREDENTIALS_FULL_URI points at this server (${baseUrl(address)}); unset it for credcache serve`,
    );
  }
  if (ecsAgent && !full) {
    throw new UsageError(
      `--source container: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI points at ${ECS_AGENT_HOST}, which this server answers in --ecs-agent mode; use the real source instead`,
    );
  }
}

function sdkLogger(name: string, log: (line: string) => void) {
  // Core's own lines are skipped: its events say the same, once.
  const note = (message: unknown) => {
    const text = String(message);
    if (!text.includes("@credcache/core")) log(`warning: ${name}: ${text}`);
  };
  return { debug: () => {}, info: () => {}, warn: note, error: note };
}

/** One log line per event worth an operator's attention. Core's events hold no secret. */
function logEvent(name: string, event: CacheEvent, metrics: ServeMetrics, log: (line: string) => void): void {
  const at = (ms: number | undefined) => (ms === undefined ? "never" : new Date(ms).toISOString());
  switch (event.type) {
    case "refresh-success":
      metrics.expiresAt(name, event.expiration);
      log(`${name}: fetched ${event.accessKeyId}, expires ${at(event.expiration)}`);
      break;
    case "refresh-failure":
      log(
        `warning: ${name}: fetching failed (${event.error.message})${event.retryAt ? `; next attempt after ${at(event.retryAt)}` : ""}`,
      );
      break;
    case "stale-served":
      log(`warning: ${name}: serving the set that expires at ${at(event.expiration)} while the source fails`);
      break;
    case "extended":
      log(
        `warning: ${name}: serving an expired set extended to ${at(event.expiration)} while the source fails`,
      );
      break;
    case "cache-error":
      log(`warning: ${name}: cache ${event.operation} failed: ${event.error.message}`);
      break;
    case "record-rejected":
      log(`warning: ${name}: discarded an unreadable cache entry (${event.reason})`);
      break;
  }
}

function listen(server: import("node:http").Server, address: ListenAddress): Promise<void> {
  return new Promise((done, fail) => {
    server.once("error", (error: NodeJS.ErrnoException) =>
      fail(new CommandFailedError(`cannot listen on ${baseUrl(address)}: ${error.code ?? error.message}`)),
    );
    server.listen({ host: address.host, port: address.port, exclusive: true }, () => done());
  });
}

/** The first SIGTERM or SIGINT; `dispose` removes the handlers. */
function stopSignal(): { signal: Promise<NodeJS.Signals>; dispose(): void } {
  let stop: (signal: NodeJS.Signals) => void = () => {};
  const signal = new Promise<NodeJS.Signals>((done) => {
    stop = done;
  });
  const dispose = () => {
    process.off("SIGTERM", stop);
    process.off("SIGINT", stop);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  return { signal, dispose };
}

/** Stops accepting, lets requests in flight finish (closing each connection as it goes idle). */
function drain(server: import("node:http").Server): Promise<void> {
  return new Promise((done) => {
    const timer = setTimeout(() => server.closeAllConnections(), DRAIN_MS);
    const idle = setInterval(() => server.closeIdleConnections(), 50);
    server.close(() => {
      clearTimeout(timer);
      clearInterval(idle);
      done();
    });
    server.closeIdleConnections();
  });
}
