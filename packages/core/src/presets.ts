import { hostname } from "node:os";
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from "@smithy/types";
import { MissingAdapterError } from "./errors.js";
import { type CachedCredentialProvider, type FromCacheInit, fromCache } from "./fromCache.js";

/** `fromCache` options a preset accepts; the preset supplies `provider`, `key` and `source`. */
export type PresetCacheOptions = Omit<FromCacheInit, "provider" | "key" | "source"> & {
  /** Overrides the namespaced key the preset builds. */
  key?: string;
};

type CredentialProvidersModule = typeof import("@aws-sdk/credential-providers");

let sdkProviders: Promise<CredentialProvidersModule> | undefined;

/** `@aws-sdk/credential-providers` is an optional peer: load it only when a preset fetches. */
function loadSdkProviders(): Promise<CredentialProvidersModule> {
  sdkProviders ??= import("@aws-sdk/credential-providers").catch((cause) => {
    sdkProviders = undefined;
    throw new MissingAdapterError("@aws-sdk/credential-providers", "preset", { cause });
  });
  return sdkProviders;
}

/** A provider created on first use from the lazily loaded SDK module, then reused. */
function lazyProvider(
  create: (sdk: CredentialProvidersModule) => AwsCredentialIdentityProvider,
): AwsCredentialIdentityProvider {
  let created: AwsCredentialIdentityProvider | undefined;
  return async (properties?: Record<string, unknown>): Promise<AwsCredentialIdentity> => {
    created ??= create(await loadSdkProviders());
    return created(properties);
  };
}

/** Where the SDK will look for IMDS, so two endpoints never share a key. */
function imdsEndpoint(env: KeyEnv): string {
  if (env.AWS_EC2_METADATA_SERVICE_ENDPOINT) return env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
  return env.AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE?.toLowerCase() === "ipv6"
    ? "http://[fd00:ec2::254]"
    : "http://169.254.169.254";
}

/** Environment variables the instance and container keys are built from. */
export type KeyEnv = Record<string, string | undefined>;

/** Where a preset key is computed for. */
export interface KeyOptions {
  /** @default os.hostname() */
  host?: string;
  /** @default process.env */
  env?: KeyEnv;
}

/** The session name used when AssumeRole params name none, so the key stays stable. */
export const DEFAULT_SESSION_NAME = "credcache";

/**
 * The key {@link fromCachedInstanceMetadata} uses on this host: the IMDS endpoint the
 * SDK will call (`AWS_EC2_METADATA_SERVICE_ENDPOINT`, or the IPv4/IPv6 link-local
 * address) and the host name.
 */
export function instanceMetadataKey(options: KeyOptions = {}): string {
  return `imds:${imdsEndpoint(options.env ?? process.env)}:${options.host ?? hostname()}`;
}

/** The key {@link fromCachedContainerMetadata} uses: the credentials URI and the host name. */
export function containerMetadataKey(options: KeyOptions = {}): string {
  const env = options.env ?? process.env;
  const uri =
    env.AWS_CONTAINER_CREDENTIALS_FULL_URI ??
    (env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
      ? `http://169.254.170.2${env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI}`
      : "unset");
  return `container:${uri}:${options.host ?? hostname()}`;
}

/** The key {@link fromCachedTemporaryCredentials} uses. */
export function temporaryCredentialsKey(roleArn: string, sessionName: string = DEFAULT_SESSION_NAME): string {
  return `sts:${roleArn}:${sessionName}`;
}

/** The key {@link fromCachedIni} uses. */
export function iniKey(profile: string): string {
  return `profile:${profile}`;
}

/**
 * Retries of the metadata presets (the SDK's own default is 0). With a shared cache one
 * process per host asks while the others wait for it, so that one should not give up on
 * the first 1 s timeout of a busy host or a throttled endpoint.
 */
export const PRESET_METADATA_MAX_RETRIES = 2;

export interface CachedInstanceMetadataInit extends PresetCacheOptions {
  /** Passed to the SDK's `fromInstanceMetadata`. @default 1000 */
  timeout?: number;
  /** Passed to the SDK's `fromInstanceMetadata`. @default 2 (the SDK's is 0) */
  maxRetries?: number;
  /** Host name in the key. Instance credentials must never be shared across hosts. @default os.hostname() */
  host?: string;
}

/**
 * EC2 instance-profile credentials through the SDK's `fromInstanceMetadata`, cached.
 * The key is scoped to the IMDS endpoint and this host's name: instance credentials
 * used from another host trigger GuardDuty's InstanceCredentialExfiltration finding,
 * so even a shared Redis never hands them to another machine. `staleIfError` is on,
 * like the SDK's own static stability for IMDS.
 *
 * @example
 * ```ts
 * const credentials = fromCachedInstanceMetadata({ cache: fileCache() });
 * ```
 */
export function fromCachedInstanceMetadata(init: CachedInstanceMetadataInit = {}): CachedCredentialProvider {
  const { timeout, maxRetries, host, key, ...cacheOptions } = init;
  return fromCache({
    staleIfError: true,
    ...cacheOptions,
    key: key ?? instanceMetadataKey(host === undefined ? {} : { host }),
    source: "imds",
    provider: lazyProvider((sdk) =>
      sdk.fromInstanceMetadata({
        ...(timeout !== undefined && { timeout }),
        maxRetries: maxRetries ?? PRESET_METADATA_MAX_RETRIES,
        ...(init.logger && { logger: init.logger }),
      }),
    ),
  });
}

export interface CachedContainerMetadataInit extends PresetCacheOptions {
  /** Passed to the SDK's `fromContainerMetadata`. @default 1000 */
  timeout?: number;
  /** Passed to the SDK's `fromContainerMetadata`. @default 2 (the SDK's is 0) */
  maxRetries?: number;
}

/**
 * ECS / EKS Pod Identity container credentials through the SDK's `fromContainerMetadata`,
 * cached under a key scoped to the credentials URI.
 */
export function fromCachedContainerMetadata(
  init: CachedContainerMetadataInit = {},
): CachedCredentialProvider {
  const { timeout, maxRetries, key, ...cacheOptions } = init;
  return fromCache({
    ...cacheOptions,
    key: key ?? containerMetadataKey(),
    source: "container",
    provider: lazyProvider((sdk) =>
      sdk.fromContainerMetadata({
        ...(timeout !== undefined && { timeout }),
        maxRetries: maxRetries ?? PRESET_METADATA_MAX_RETRIES,
        ...(init.logger && { logger: init.logger }),
      }),
    ),
  });
}

export interface CachedTemporaryCredentialsInit extends PresetCacheOptions {
  /** AssumeRole parameters. `RoleSessionName` defaults to `credcache` so the key is stable. */
  params: { RoleArn: string; RoleSessionName?: string; DurationSeconds?: number; [name: string]: unknown };
  /** Credentials used to call STS; otherwise the SDK's default chain. */
  masterCredentials?: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  /** Options for the STS client, e.g. `{ region: "eu-west-1" }`. */
  clientConfig?: Record<string, unknown>;
}

/**
 * STS AssumeRole credentials through the SDK's `fromTemporaryCredentials`, cached under
 * `sts:<role ARN>:<session name>`. With a Redis store this gives a fleet one STS call per
 * rotation.
 */
export function fromCachedTemporaryCredentials(
  init: CachedTemporaryCredentialsInit,
): CachedCredentialProvider {
  const { params, masterCredentials, clientConfig, key, ...cacheOptions } = init;
  const sessionName = params.RoleSessionName ?? DEFAULT_SESSION_NAME;
  return fromCache({
    ...cacheOptions,
    key: key ?? temporaryCredentialsKey(params.RoleArn, sessionName),
    source: "sts",
    provider: lazyProvider((sdk) =>
      sdk.fromTemporaryCredentials({
        params: { ...params, RoleSessionName: sessionName } as never,
        ...(masterCredentials && { masterCredentials }),
        ...(clientConfig && { clientConfig }),
        ...(init.logger && { logger: init.logger }),
      } as never),
    ),
  });
}

export interface CachedIniInit extends PresetCacheOptions {
  /** The profile in `~/.aws/config` / `~/.aws/credentials`. @default AWS_PROFILE or "default" */
  profile?: string;
}

/** A shared-config profile (assume-role, SSO, ...) through the SDK's `fromIni`, cached under `profile:<name>`. */
export function fromCachedIni(init: CachedIniInit = {}): CachedCredentialProvider {
  const { profile, key, ...cacheOptions } = init;
  const name = profile ?? process.env.AWS_PROFILE ?? "default";
  return fromCache({
    ...cacheOptions,
    key: key ?? iniKey(name),
    source: "profile",
    provider: lazyProvider((sdk) =>
      sdk.fromIni({ profile: name, ...(init.logger && { logger: init.logger }) }),
    ),
  });
}
