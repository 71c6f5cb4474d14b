import {
  type AwsCredentialIdentity,
  type CredentialCache,
  PROCESS_DEFAULTS,
  RecentSecrets,
  SDK_REFRESH_WINDOWS,
} from "@credcache/core";
import { commandLine, integerFlag } from "../args.js";
import { resolveCacheSpec } from "../config.js";
import { CliError, CommandFailedError, exitCodeOf, messageOf, oneLine, UsageError } from "../errors.js";
import { formatDuration } from "../format.js";
import type { CommandIo } from "../io.js";
import { isoOrNever, SILENT_LOGGER, Warnings } from "../report.js";
import {
  checkSourceEnv,
  createSourceProvider,
  describeSource,
  parseSource,
  readSourceOptions,
  SOURCE_OPTION_FLAGS,
  type Source,
  type SourceOptions,
} from "../sources.js";
import { closeStore, openStoreOrWarn } from "../store.js";
import { STORE_FLAGS } from "./shared.js";

const FLAGS = {
  ...STORE_FLAGS,
  ...SOURCE_OPTION_FLAGS,
  source: "string",
  "min-validity": "string",
  "cache-timeout": "string",
  help: "boolean",
} as const;

const MINUTE = 60_000;
/** Chain of `credcache process` sources in this process tree, to stop credential_process loops. */
const CHAIN_VAR = "CREDCACHE_PROCESS_CHAIN";

/** `credcache process`: the AWS `credential_process` contract, answered from the shared cache. */
export async function run(argv: readonly string[], io: CommandIo): Promise<number> {
  const args = await commandLine(argv, FLAGS, "process", io);
  if (!args) return 0;
  const { flags } = args;
  const source = parseSource(flags.source);
  const sourceOptions = readSourceOptions(flags, source);
  const minValidityMs =
    (integerFlag(flags["min-validity"], "min-validity", 0, 3600) ?? PROCESS_DEFAULTS.minValidityMs / 1000) *
    1000;
  const cacheTimeoutMs =
    integerFlag(flags["cache-timeout"], "cache-timeout", 1, 60_000) ?? PROCESS_DEFAULTS.cacheTimeoutMs;
  const spec = resolveCacheSpec(flags, io.env, io.cwd);
  checkSourceEnv(source, io.env);

  // A profile whose credential_process is this very command would recurse forever.
  const chain = (io.env[CHAIN_VAR] ?? "").split(" ").filter(Boolean);
  if (chain.includes(source.text)) {
    throw new UsageError(
      `--source ${source.text} leads back to credcache itself (${[...chain, source.text].join(" -> ")}); point that profile at a real credential source`,
    );
  }
  const previousChain = process.env[CHAIN_VAR];
  process.env[CHAIN_VAR] = [...chain, source.text].join(" ");

  const warnings = new Warnings();
  let store: CredentialCache | undefined;
  try {
    store = await openStoreOrWarn(spec, (line) => warnings.add(line));
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

async function resolveAndPrint(
  io: CommandIo,
  source: Source,
  sourceOptions: SourceOptions,
  store: CredentialCache | undefined,
  { minValidityMs, cacheTimeoutMs }: { minValidityMs: number; cacheTimeoutMs: number },
  warnings: Warnings,
): Promise<number> {
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
      logger: SILENT_LOGGER,
      onEvent: (event) => warnings.note(event),
    },
    sourceOptions,
  );
  const secrets = new RecentSecrets();
  let identity: AwsCredentialIdentity;
  try {
    try {
      identity = await provider();
    } finally {
      // The refresh behind ends here; its outcome belongs in this run's report.
      await provider.close();
    }
    secrets.remember(identity);
    const left = timeLeft(identity);
    if (left < minValidityMs) {
      throw new CommandFailedError(
        `${describeSource(source, io.env)} has only credentials that expire in ${formatDuration(left)} ` +
          `(at ${isoOrNever(identity.expiration?.getTime())}); SDKs treat credentials with less than ` +
          `${SDK_REFRESH_WINDOWS.javascriptV3Ms / MINUTE} min left as expired, so credcache will not hand them out ` +
          `(--min-validity ${minValidityMs / 1000} s); try again once the source has rotated them`,
      );
    }
  } catch (error) {
    // Configuration problems found late (a missing SDK package) keep their exit code 2.
    if (!(error instanceof CliError) && exitCodeOf(error) === 2) throw error;
    const reason =
      error instanceof CliError
        ? error.message
        : `could not get credentials from ${describeSource(source, io.env)}: ${messageOf(error)}`;
    const [firstWarning] = warnings.all();
    const detail = firstWarning === undefined ? reason : `${reason} (also: ${firstWarning})`;
    throw new CommandFailedError(oneLine(detail, secrets));
  }
  io.stdout.write(processOutput(identity));
  for (const warning of warnings.all()) {
    io.stderr.write(`credcache process: warning: ${oneLine(warning, secrets)}\n`);
  }
  return 0;
}

function timeLeft(identity: AwsCredentialIdentity): number {
  const expiration = identity.expiration?.getTime();
  return expiration === undefined ? Number.POSITIVE_INFINITY : expiration - Date.now();
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
