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
import { UsageError } from "./errors.js";

/** Where `credcache process` gets credentials on a miss. */
export type Source =
  | { kind: "imds"; text: string }
  | { kind: "container"; text: string }
  | { kind: "profile"; text: string; profile: string }
  | { kind: "assume-role"; text: string; roleArn: string };

const SOURCE_HELP = "use imds, container, profile:NAME or assume-role:ARN";
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;
const PROFILE_NAME = /^[\w+=,.@:/-]{1,128}$/;

/** Parses `--source`. Throws a {@link UsageError} that lists the accepted forms. */
export function parseSource(text: string | undefined): Source {
  if (text === undefined || text === "") throw new UsageError(`--source is required: ${SOURCE_HELP}`);
  if (text === "imds" || text === "container") return { kind: text, text };
  const colon = text.indexOf(":");
  const kind = colon === -1 ? text : text.slice(0, colon);
  const rest = colon === -1 ? "" : text.slice(colon + 1);
  if (kind === "profile") {
    if (!PROFILE_NAME.test(rest)) {
      throw new UsageError(`--source ${text}: name the profile, e.g. profile:deploy`);
    }
    return { kind, text, profile: rest };
  }
  if (kind === "assume-role") {
    if (!ROLE_ARN.test(rest)) {
      throw new UsageError(
        `--source ${text}: expected a role ARN, e.g. assume-role:arn:aws:iam::123456789012:role/worker`,
      );
    }
    return { kind, text, roleArn: rest };
  }
  throw new UsageError(`unknown source "${text}": ${SOURCE_HELP}`);
}

/** Options for the source itself (as opposed to the cache). */
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

/** The AssumeRole request of an `assume-role:` source, for the provider and its key alike. */
function assumeRoleRequest(
  source: Extract<Source, { kind: "assume-role" }>,
  options: SourceOptions,
): { params: AssumeRoleParams; clientConfig?: Record<string, unknown> } {
  return {
    params: {
      RoleArn: source.roleArn,
      ...(options.sessionName !== undefined && { RoleSessionName: options.sessionName }),
      ...(options.durationSeconds !== undefined && { DurationSeconds: options.durationSeconds }),
    },
    ...(options.region !== undefined && { clientConfig: { region: options.region } }),
  };
}

/**
 * The core preset for a source: the same keys and behaviour a Node application gets.
 * `container` is the SDK's `fromHttp`: ECS, EKS Pod Identity (169.254.170.23 and the rotated
 * token file), Greengrass and loopback servers such as `credcache serve`.
 */
export function createSourceProvider(
  source: Source,
  cacheOptions: CacheOptions,
  options: SourceOptions = {},
): CachedCredentialProvider {
  const remote = {
    ...(options.timeout !== undefined && { timeout: options.timeout }),
    ...(options.maxRetries !== undefined && { maxRetries: options.maxRetries }),
  };
  switch (source.kind) {
    case "imds":
      return fromCachedInstanceMetadata({ ...cacheOptions, ...remote });
    case "container":
      return fromCachedContainerMetadata({ ...cacheOptions, ...remote });
    case "profile":
      return fromCachedIni({ ...cacheOptions, profile: source.profile });
    case "assume-role":
      return fromCachedTemporaryCredentials({ ...cacheOptions, ...assumeRoleRequest(source, options) });
  }
}

type Env = Record<string, string | undefined>;

/**
 * The key core's preset uses for a source, so `inspect` and `clear` can find entries in
 * stores that cannot list their keys (core's own key builders, with this run's env and
 * the source options `process` would be given).
 */
export function presetKey(source: Source, env: Env, options: SourceOptions = {}): string {
  switch (source.kind) {
    case "imds":
      return instanceMetadataKey({ env });
    case "container":
      return containerMetadataKey({ env });
    case "profile":
      return iniKey(source.profile, { env });
    case "assume-role": {
      const { params, clientConfig } = assumeRoleRequest(source, options);
      return temporaryCredentialsKey(params, { clientConfig, env });
    }
  }
}

/**
 * Keys worth looking at on this host when the store cannot list its own: the IMDS key,
 * the container key when this is a container, the default profile's key and the PHP
 * default key.
 */
export function wellKnownKeys(env: Env): string[] {
  const keys = [instanceMetadataKey({ env })];
  if (env.AWS_CONTAINER_CREDENTIALS_FULL_URI || env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI) {
    keys.push(containerMetadataKey({ env }));
  }
  keys.push(iniKey(env.AWS_PROFILE || "default", { env }), DEFAULT_CACHE_KEY);
  return keys;
}
