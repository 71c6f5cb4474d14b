import {
  type AwsCredentialIdentity,
  type CacheEvent,
  type CredentialCache,
  PROCESS_DEFAULTS,
  SDK_REFRESH_WINDOWS,
} from "@credcache/core";
import { integerFlag, parseArgs } from "../args.js";
import { resolveCacheSpec } from "../config.js";
import { CliError, CommandFailedError, exitCodeOf, messageOf, oneLine, UsageError } from "../errors.js";
import { formatDuration } from "../format.js";
import type { CommandIo } from "../io.js";
import { createSourceProvider, parseSource, type Source, type SourceOptions } from "../sources.js";
import { closeStore, openStore } from "../store.js";
import { STORE_FLAGS } from "./shared.js";

const FLAGS = {
  ...STORE_FLAGS,
  source: "string",
  timeout: "string",
  retries: "string",
  "session-name": "string",
  duration: "string",
  region: "string",
  "min-validity": "string",
  "cache-timeout": "string",
  help: "boolean",
} as const;

const MINUTE = 60_000;
/** Chain of `credcache process` sources in this process tree, to stop credential_process loops. */
const CHAIN_VAR = "CREDCACHE_PROCESS_CHAIN";

/** `credcache process`: the AWS `credential_process` contract, answered from the shared cache. */
export async function run(argv: readonly string[], io: CommandIo): Promise<number> {
  const { flags, positionals } = parseArgs(argv, FLAGS, "process");
  if (flags.help) {
    io.stdout.write((await import("../help.js")).helpText("process"));
    return 0;
  }
  if (positionals.length > 0) {
    throw new UsageError(`unexpected argument "${positionals[0]}"; run "credcache process --help"`);
  }
  const source = parseSource(flags.source);
  const sourceOptions = readSourceOptions(flags, source);
  const minValidityMs =
    (integerFlag(flags["min-validity"], "min-validity", 0, 3600) ?? PROCESS_DEFAULTS.minValidityMs / 1000) *
    1000;
  const cacheTimeoutMs =
    integerFlag(flags["cache-timeout"], "cache-timeout", 1, 60_000) ?? PROCESS_DEFAULTS.cacheTimeoutMs;
  const spec = resolveCacheSpec(flags, io.env, io.cwd);
  if (
    source.kind === "container" &&
    !io.env.AWS_CONTAINER_CREDENTIALS_FULL_URI &&
    !io.env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
  ) {
    throw new UsageError(
      "--source container needs AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or AWS_CONTAINER_CREDENTIALS_FULL_URI (set by ECS and EKS Pod Identity)",
    );
  }

  // A profile whose credential_process is this very command would recurse forever.
  const chain = (io.env[CHAIN_VAR] ?? "").split(" ").filter(Boolean);
  if (chain.includes(source.text)) {
    throw new UsageError(
      `--source ${source.text} leads back to credcache itself (${[...chain, source.text].join(" -> ")}); point that profile at a real credential source`,
    );
  }
  const previousChain = process.env[CHAIN_VAR];
  process.env[CHAIN_VAR] = [...chain, source.text].join(" ");

  const warnings = new Set<string>();
  let store: CredentialCache | undefined;
  try {
    try {
      store = await openStore(spec);
    } catch (error) {
      // An unusable store (unsafe directory, unopenable database) must not stop the
      // application: fetch without it, like core does when a store fails mid-flight.
      if ((error as { code?: unknown }).code !== "ERR_CREDCACHE_UNAVAILABLE") throw error;
      warnings.add(`cache ${spec.label} is unusable, fetched without it: ${messageOf(error)}`);
    }
    return await resolveAndPrint(
      io,
      source,
      sourceOptions,
      store,
      { minValidityMs, cacheTimeoutMs },
      warnings,
    );
  } finally {
    await closeStore(store);
    if (previousChain === undefined) delete process.env[CHAIN_VAR];
    else process.env[CHAIN_VAR] = previousChain;
  }
}

/** The source option flags (`--timeout`, `--region`, ...), checked against the source. */
export function readSourceOptions(
  flags: { timeout?: string; retries?: string; "session-name"?: string; duration?: string; region?: string },
  source: Source,
): SourceOptions {
  const remote = source.kind === "imds" || source.kind === "container";
  const timeout = integerFlag(flags.timeout, "timeout", 1, 60_000);
  const maxRetries = integerFlag(flags.retries, "retries", 0, 10);
  if (!remote && (timeout !== undefined || maxRetries !== undefined)) {
    throw new UsageError(
      `--timeout and --retries apply to the imds and container sources, not ${source.text}`,
    );
  }
  const sessionName = flags["session-name"];
  const durationSeconds = integerFlag(flags.duration, "duration", 900, 43_200);
  const region = flags.region;
  if (
    source.kind !== "assume-role" &&
    (sessionName !== undefined || durationSeconds !== undefined || region !== undefined)
  ) {
    throw new UsageError(
      `--session-name, --duration and --region apply to assume-role:ARN, not ${source.text}`,
    );
  }
  if (sessionName !== undefined && !/^[\w+=,.@-]{2,64}$/.test(sessionName)) {
    throw new UsageError(
      `--session-name must be 2-64 characters of letters, digits and +=,.@_-, got "${sessionName}"`,
    );
  }
  if (region !== undefined && !/^[a-z]{2}(-[a-z]+)+-\d+$/.test(region)) {
    throw new UsageError(`--region must be an AWS region such as eu-west-1, got "${region}"`);
  }
  return {
    ...(timeout !== undefined && { timeout }),
    ...(maxRetries !== undefined && { maxRetries }),
    ...(sessionName !== undefined && { sessionName }),
    ...(durationSeconds !== undefined && { durationSeconds }),
    ...(region !== undefined && { region }),
  };
}

async function resolveAndPrint(
  io: CommandIo,
  source: Source,
  sourceOptions: SourceOptions,
  store: CredentialCache | undefined,
  { minValidityMs, cacheTimeoutMs }: { minValidityMs: number; cacheTimeoutMs: number },
  warnings: Set<string>,
): Promise<number> {
  // One cause (say, an unsafe directory) fails get, acquireLock and set alike: one line for it.
  const cacheErrors = new Map<string, string[]>();
  const onEvent = (event: CacheEvent): void => {
    switch (event.type) {
      case "cache-error":
        cacheErrors.set(event.error.message, [
          ...(cacheErrors.get(event.error.message) ?? []).filter((op) => op !== event.operation),
          event.operation,
        ]);
        break;
      case "record-rejected":
        warnings.add(`discarded an unreadable cache entry (${event.reason})`);
        break;
      case "stale-served":
        warnings.add(
          `refreshing failed (${event.error.message}); served cached credentials that expire at ${isoOrNever(event.expiration)}`,
        );
        break;
      case "extended":
        warnings.add(
          `the source could not renew the credentials (${event.error.message}); handing out an expired set extended to ${isoOrNever(event.expiration)} (static stability)`,
        );
        break;
      case "lock-waited":
        if (event.outcome === "timeout") {
          warnings.add(
            `waited ${event.waitedMs} ms for the refresh lock with no attempt visible, then fetched itself`,
          );
        }
        break;
    }
  };
  // The SDK logs through this too (its static-stability notice, for one): each line becomes
  // one credcache warning. Core's own lines are skipped; its events above say the same.
  const note = (message: unknown) => {
    const text = String(message);
    // The SDK's static-stability notice says what core's `extended` event says: one line.
    if (text.includes("@credcache/core") || text.startsWith("Attempting credential expiration extension"))
      return;
    warnings.add(text);
  };
  const logger = { debug: () => {}, info: () => {}, warn: note, error: note };
  // Windows above botocore's 15 min, so an SDK that runs this command is handed a set it
  // will not ask about again before the next rotation. Inside them the run answers at once
  // and refreshes behind; close() below waits for that refresh (bounded by the lock's
  // lease), so the one run that refreshes finishes it before it exits. Only a set below
  // --min-validity makes a run wait.
  const provider = createSourceProvider(
    source,
    {
      ...(store && { cache: store }),
      proactiveRefresh: false,
      advisoryRefreshMs: Math.max(PROCESS_DEFAULTS.advisoryRefreshMs, minValidityMs),
      mandatoryRefreshMs: Math.max(PROCESS_DEFAULTS.mandatoryRefreshMs, minValidityMs),
      minValidityMs,
      cacheTimeoutMs,
      logger,
      onEvent,
    },
    sourceOptions,
  );
  const secrets: Array<string | undefined> = [];
  const noteCacheErrors = () => {
    for (const [message, operations] of cacheErrors) {
      warnings.add(`cache ${operations.join(", ")} failed: ${message}`);
    }
  };
  try {
    const identity = await provider();
    secrets.push(identity.secretAccessKey, identity.sessionToken);
    const left = timeLeft(identity);
    if (left < minValidityMs) {
      throw new CommandFailedError(
        `${describeSource(source, io)} has only credentials that expire in ${formatDuration(left)} ` +
          `(at ${isoOrNever(identity.expiration?.getTime())}); SDKs treat credentials with less than ` +
          `${SDK_REFRESH_WINDOWS.javascriptV3Ms / MINUTE} min left as expired, so credcache will not hand them out ` +
          `(--min-validity ${minValidityMs / 1000} s); try again once the source has rotated them`,
      );
    }
    io.stdout.write(processOutput(identity));
    noteCacheErrors();
    for (const warning of warnings) {
      io.stderr.write(`credcache process: warning: ${oneLine(warning, secrets)}\n`);
    }
    return 0;
  } catch (error) {
    // Configuration problems found late (a missing SDK package) keep their exit code 2.
    if (!(error instanceof CliError) && exitCodeOf(error) === 2) throw error;
    const reason =
      error instanceof CliError
        ? error.message
        : `could not get credentials from ${describeSource(source, io)}: ${messageOf(error)}`;
    noteCacheErrors();
    const [firstWarning] = warnings;
    const detail = firstWarning === undefined ? reason : `${reason} (also: ${firstWarning})`;
    throw new CommandFailedError(oneLine(detail, secrets));
  } finally {
    await provider.close();
  }
}

function timeLeft(identity: AwsCredentialIdentity): number {
  const expiration = identity.expiration?.getTime();
  return expiration === undefined ? Number.POSITIVE_INFINITY : expiration - Date.now();
}

function isoOrNever(epochMs: number | undefined): string {
  return epochMs === undefined ? "never" : new Date(epochMs).toISOString();
}

function describeSource(source: Source, io: CommandIo): string {
  if (source.kind === "imds")
    return `imds (${io.env.AWS_EC2_METADATA_SERVICE_ENDPOINT || "http://169.254.169.254"})`;
  return source.text;
}

/** The credential_process JSON (Version 1), in the field order the AWS docs use. */
function processOutput(identity: AwsCredentialIdentity): string {
  const { accountId } = identity as { accountId?: string };
  const out = {
    Version: 1,
    AccessKeyId: identity.accessKeyId,
    SecretAccessKey: identity.secretAccessKey,
    ...(identity.sessionToken && { SessionToken: identity.sessionToken }),
    ...(identity.expiration && { Expiration: identity.expiration.toISOString() }),
    ...(accountId && { AccountId: accountId }),
  };
  return `${JSON.stringify(out, null, 2)}\n`;
}
