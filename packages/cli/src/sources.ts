import {
  type AssumeRoleParams,
  type CachedCredentialProvider,
  containerMetadataKey,
  DEFAULT_CACHE_KEY,
  type FromCacheInit,
  fromCachedContainerMetadata,
  fromCachedIni,
  fromCachedInstanceMetadata,
  fromCachedTemporaryCredentials,
  iniKey,
  instanceMetadataKey,
  temporaryCredentialsKey,
} from "@credcache/core";
import { integerFlag } from "./args.js";
import { UsageError } from "./errors.js";

type Env = Record<string, string | undefined>;

/**
 * The option flags of a source (as opposed to the cache), shared by `credcache process`,
 * `credcache serve --source` and the per-credential settings of `serve --credentials`.
 */
export const SOURCE_OPTION_FLAGS = {
  timeout: "string",
  retries: "string",
  "session-name": "string",
  duration: "string",
  region: "string",
} as const;

export type SourceOptionName = keyof typeof SOURCE_OPTION_FLAGS;
export type SourceOptionFlags = Partial<Record<SourceOptionName, string | undefined>>;

/** Options for the source itself, read from {@link SOURCE_OPTION_FLAGS}. */
export interface SourceOptions {
  /** IMDS / container (the SDK's `fromHttp`): per-request timeout in ms. */
  timeout?: number;
  /** IMDS / container: retries after the first attempt. */
  maxRetries?: number;
  /** assume-role: RoleSessionName (part of the key). */
  sessionName?: string;
  /** assume-role: DurationSeconds. */
  durationSeconds?: number;
  /** assume-role: the STS region. */
  region?: string;
}

export type CacheOptions = Omit<FromCacheInit, "provider" | "key" | "source">;

/** How one kind of `--source` is written, checked, fetched and keyed: one entry per kind. */
interface SourceKind {
  /** `profile:NAME`: the part after the colon, checked; undefined when the kind takes none. */
  argument?: { placeholder: string; pattern: RegExp; example: string };
  /** The option flags that apply to it. */
  options: readonly SourceOptionName[];
  /** Checks of the environment it needs (exit 2 when missing). */
  checkEnv?(env: Env): void;
  /** The core preset, with the same keys and behaviour a Node application gets. */
  provider(argument: string, cache: CacheOptions, options: SourceOptions): CachedCredentialProvider;
  /** The key that preset uses, for `inspect` and `clear` on stores that cannot list keys. */
  key(argument: string, env: Env, options: SourceOptions): string;
  /** How messages name it. */
  describe?(env: Env): string;
}

const REMOTE_OPTIONS = ["timeout", "retries"] as const;

function remoteOptions(options: SourceOptions) {
  return {
    ...(options.timeout !== undefined && { timeout: options.timeout }),
    ...(options.maxRetries !== undefined && { maxRetries: options.maxRetries }),
  };
}

/** The AssumeRole request of an `assume-role:` source, for the provider and its key alike. */
function assumeRoleRequest(
  roleArn: string,
  options: SourceOptions,
): { params: AssumeRoleParams; clientConfig?: Record<string, unknown> } {
  return {
    params: {
      RoleArn: roleArn,
      ...(options.sessionName !== undefined && { RoleSessionName: options.sessionName }),
      ...(options.durationSeconds !== undefined && { DurationSeconds: options.durationSeconds }),
    },
    ...(options.region !== undefined && { clientConfig: { region: options.region } }),
  };
}

/** True when this process runs where ECS or EKS Pod Identity set a credentials URI. */
export function inContainer(env: Env): boolean {
  return Boolean(env.AWS_CONTAINER_CREDENTIALS_FULL_URI || env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI);
}

/**
 * Every source the CLI knows. `container` is the SDK's `fromHttp`: ECS, EKS Pod Identity
 * (169.254.170.23 and the rotated token file), Greengrass and loopback servers such as
 * `credcache serve`.
 */
const SOURCES = {
  imds: {
    options: REMOTE_OPTIONS,
    provider: (_arg, cache, options) => fromCachedInstanceMetadata({ ...cache, ...remoteOptions(options) }),
    key: (_arg, env) => instanceMetadataKey({ env }),
    describe: (env) => `imds (${env.AWS_EC2_METADATA_SERVICE_ENDPOINT || "http://169.254.169.254"})`,
  },
  container: {
    options: REMOTE_OPTIONS,
    checkEnv(env) {
      if (!inContainer(env)) {
        throw new UsageError(
          "--source container needs AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or AWS_CONTAINER_CREDENTIALS_FULL_URI (set by ECS and EKS Pod Identity)",
        );
      }
    },
    provider: (_arg, cache, options) => fromCachedContainerMetadata({ ...cache, ...remoteOptions(options) }),
    key: (_arg, env) => containerMetadataKey({ env }),
  },
  profile: {
    argument: {
      placeholder: "NAME",
      pattern: /^[\w+=,.@:/-]{1,128}$/,
      example: "name the profile, e.g. profile:deploy",
    },
    options: [],
    provider: (profile, cache) => fromCachedIni({ ...cache, profile }),
    key: (profile, env) => iniKey(profile, { env }),
  },
  "assume-role": {
    argument: {
      placeholder: "ARN",
      pattern: /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/,
      example: "expected a role ARN, e.g. assume-role:arn:aws:iam::123456789012:role/worker",
    },
    options: ["session-name", "duration", "region"],
    provider: (roleArn, cache, options) =>
      fromCachedTemporaryCredentials({ ...cache, ...assumeRoleRequest(roleArn, options) }),
    key: (roleArn, env, options) => {
      const { params, clientConfig } = assumeRoleRequest(roleArn, options);
      return temporaryCredentialsKey(params, { clientConfig, env });
    },
  },
} satisfies Record<string, SourceKind>;

export type SourceKindName = keyof typeof SOURCES;

/** A parsed `--source`: its kind, and the part after the colon (profile name, role ARN). */
export interface Source {
  kind: SourceKindName;
  /** As the user wrote it. */
  text: string;
  /** The part after `kind:`; "" for kinds that take none. */
  argument: string;
}

/** How each kind is written: `imds`, `profile:NAME`. */
function formOf(name: string, kind: SourceKind): string {
  return kind.argument ? `${name}:${kind.argument.placeholder}` : name;
}

const SOURCE_HELP = `use ${Object.entries(SOURCES as Record<string, SourceKind>)
  .map(([name, kind]) => formOf(name, kind))
  .join(", ")
  .replace(/, ([^,]*)$/, " or $1")}`;

/** Parses `--source`. Throws a {@link UsageError} that lists the accepted forms. */
export function parseSource(text: string | undefined): Source {
  if (text === undefined || text === "") throw new UsageError(`--source is required: ${SOURCE_HELP}`);
  const colon = text.indexOf(":");
  const name = colon === -1 ? text : text.slice(0, colon);
  const argument = colon === -1 ? "" : text.slice(colon + 1);
  const kind: SourceKind | undefined = Object.hasOwn(SOURCES, name)
    ? SOURCES[name as SourceKindName]
    : undefined;
  if (kind === undefined || (colon === -1) !== (kind.argument === undefined)) {
    throw new UsageError(`unknown source "${text}": ${SOURCE_HELP}`);
  }
  if (kind.argument && !kind.argument.pattern.test(argument)) {
    throw new UsageError(`--source ${text}: ${kind.argument.example}`);
  }
  return { kind: name as SourceKindName, text, argument };
}

function kindOf(source: Source): SourceKind {
  return SOURCES[source.kind];
}

/** Checks the environment a source needs (`container` needs its URI variables). */
export function checkSourceEnv(source: Source, env: Env): void {
  kindOf(source).checkEnv?.(env);
}

/** How messages name a source: `imds (http://169.254.169.254)`, `profile:deploy`. */
export function describeSource(source: Source, env: Env): string {
  return kindOf(source).describe?.(env) ?? source.text;
}

/** The source option flags (`--timeout`, `--region`, ...), checked against the source. */
export function readSourceOptions(flags: SourceOptionFlags, source: Source): SourceOptions {
  const accepted = kindOf(source).options as readonly SourceOptionName[];
  const misplaced = (Object.keys(SOURCE_OPTION_FLAGS) as SourceOptionName[]).filter(
    (name) => flags[name] !== undefined && !accepted.includes(name),
  );
  if (misplaced.length > 0) {
    const owners = Object.entries(SOURCES as Record<string, SourceKind>)
      .filter(([, kind]) => misplaced.some((name) => kind.options.includes(name)))
      .map(([name, kind]) => formOf(name, kind));
    throw new UsageError(
      `${misplaced.map((name) => `--${name}`).join(", ")} can only be used with ${owners.join(" or ")}, not ${source.text}`,
    );
  }
  const timeout = integerFlag(flags.timeout, "timeout", 1, 60_000);
  const maxRetries = integerFlag(flags.retries, "retries", 0, 10);
  const sessionName = flags["session-name"];
  const durationSeconds = integerFlag(flags.duration, "duration", 900, 43_200);
  const region = flags.region;
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

/** The core preset for a source: the same keys and behaviour a Node application gets. */
export function createSourceProvider(
  source: Source,
  cacheOptions: CacheOptions,
  options: SourceOptions = {},
): CachedCredentialProvider {
  return kindOf(source).provider(source.argument, cacheOptions, options);
}

/**
 * The key core's preset uses for a source, so `inspect` and `clear` can find entries in
 * stores that cannot list their keys (core's own key builders, with this run's env and
 * the source options `process` would be given).
 */
export function presetKey(source: Source, env: Env, options: SourceOptions = {}): string {
  return kindOf(source).key(source.argument, env, options);
}

/**
 * Keys worth looking at on this host when the store cannot list its own: the IMDS key,
 * the container key when this is a container, the default profile's key and the PHP
 * default key.
 */
export function wellKnownKeys(env: Env): string[] {
  const keys = [instanceMetadataKey({ env })];
  if (inContainer(env)) keys.push(containerMetadataKey({ env }));
  keys.push(iniKey(env.AWS_PROFILE || "default", { env }), DEFAULT_CACHE_KEY);
  return keys;
}
