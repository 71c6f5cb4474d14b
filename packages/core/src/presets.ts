import type { AwsCredentialIdentity, AwsCredentialIdentityProvider, Logger } from "@smithy/types";
import { type CachedCredentialProvider, fromCache } from "./fromCache.js";
import {
  type AssumeRoleParams,
  containerMetadataKey,
  DEFAULT_SESSION_NAME,
  iniKey,
  instanceMetadataKey,
  type KeyEnv,
  temporaryCredentialsKey,
} from "./keys.js";
import { lazyProvider, sdkLogger } from "./sdkProviders.js";
import { cachePlan, type PresetCacheOptions, type SourcePlan } from "./sourcePlan.js";

export type { PresetCacheOptions };

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
  /**
   * This host's identity in the key. Instance credentials must never be shared across hosts.
   * @default readHostIdentity(): the instance id, Xen uuid, machine id or host name
   */
  host?: string;
}

/**
 * EC2 instance-profile credentials through the SDK's `fromInstanceMetadata`, cached under
 * {@link instanceMetadataKey}: the IMDS endpoint and this host's identity (the instance id
 * on Nitro, the Xen uuid, else `/etc/machine-id` and the host name, else the host name; see
 * {@link readHostIdentity}). Instance credentials used from another host trigger GuardDuty's
 * InstanceCredentialExfiltration finding, so a shared Redis must not hand them to another
 * machine: that holds as far as the host identity is unique. `staleIfError` is on, like the
 * SDK's own static stability for IMDS.
 *
 * @example
 * ```ts
 * const credentials = fromCachedInstanceMetadata({ cache: fileCache() });
 * ```
 */
export function fromCachedInstanceMetadata(init: CachedInstanceMetadataInit = {}): CachedCredentialProvider {
  const { timeout, maxRetries, host, ...cacheOptions } = init;
  return cachePlan(instanceMetadataSource(init), { staleIfError: true, ...cacheOptions });
}

/** Options of the metadata sources themselves (IMDS, container endpoint). */
export interface MetadataSourceInit {
  /** Per-request timeout in ms. @default 1000 */
  timeout?: number | undefined;
  /** @default 2 ({@link PRESET_METADATA_MAX_RETRIES}) */
  maxRetries?: number | undefined;
  /** This host's identity in the key. @default readHostIdentity() */
  host?: string | undefined;
  logger?: Logger | undefined;
}

function remoteOptions(init: MetadataSourceInit) {
  return {
    ...(init.timeout !== undefined && { timeout: init.timeout }),
    maxRetries: init.maxRetries ?? PRESET_METADATA_MAX_RETRIES,
    ...sdkLogger(init.logger),
  };
}

/** The instance-metadata source: the SDK's `fromInstanceMetadata` and {@link instanceMetadataKey}. */
export function instanceMetadataSource(init: MetadataSourceInit & { env?: KeyEnv } = {}): SourcePlan {
  return {
    source: "imds",
    key: instanceMetadataKey({
      ...(init.env !== undefined && { env: init.env }),
      ...(init.host !== undefined && { host: init.host }),
    }),
    provider: lazyProvider((sdk) => sdk.fromInstanceMetadata(remoteOptions(init))),
  };
}

/**
 * The container-credentials source: the SDK's `fromHttp` with the settings read from `env`,
 * and {@link containerMetadataKey}.
 */
export function containerMetadataSource(init: MetadataSourceInit & { env?: KeyEnv } = {}): SourcePlan {
  const env = init.env ?? process.env;
  return {
    source: "container",
    key: containerMetadataKey({ env, ...(init.host !== undefined && { host: init.host }) }),
    provider: lazyProvider((sdk) =>
      sdk.fromHttp({
        // "" and not undefined: fromHttp falls back to process.env for an undefined option.
        awsContainerCredentialsRelativeUri: env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI ?? "",
        awsContainerCredentialsFullUri: env.AWS_CONTAINER_CREDENTIALS_FULL_URI ?? "",
        awsContainerAuthorizationToken: env.AWS_CONTAINER_AUTHORIZATION_TOKEN ?? "",
        awsContainerAuthorizationTokenFile: env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE ?? "",
        ...remoteOptions(init),
      }),
    ),
  };
}

export interface CachedContainerMetadataInit extends PresetCacheOptions {
  /** Passed to the SDK's `fromHttp`. @default 1000 */
  timeout?: number;
  /** Passed to the SDK's `fromHttp`. @default 2 (the SDK's is 3) */
  maxRetries?: number;
  /**
   * Where `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, `AWS_CONTAINER_CREDENTIALS_FULL_URI`,
   * `AWS_CONTAINER_AUTHORIZATION_TOKEN` and `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` are read,
   * once, for both the key and the provider.
   * @default process.env
   */
  env?: KeyEnv;
}

/**
 * Container credentials (ECS, EKS Pod Identity, Greengrass, `credcache serve`, any loopback
 * server) through the SDK's `fromHttp`, cached under {@link containerMetadataKey}. The SDK
 * calls the relative URI on 169.254.170.2, or the full URI when it is HTTPS or on an allowed
 * host (169.254.170.2, 169.254.170.23, [fd00:ec2::23], loopback; any other is refused), and
 * sends the token file's content (read again at each fetch, as EKS rotates it) or the token.
 *
 * @example
 * ```ts
 * // On EKS Pod Identity the environment holds AWS_CONTAINER_CREDENTIALS_FULL_URI and
 * // AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE; nothing else is needed.
 * const credentials = fromCachedContainerMetadata({ cache: await createCache("redis://cache:6379") });
 * ```
 */
export function fromCachedContainerMetadata(
  init: CachedContainerMetadataInit = {},
): CachedCredentialProvider {
  const { timeout, maxRetries, env, ...cacheOptions } = init;
  return cachePlan(containerMetadataSource(init), cacheOptions);
}

export interface CachedTemporaryCredentialsInit extends PresetCacheOptions {
  /** AssumeRole parameters. `RoleSessionName` defaults to `credcache` so the key is stable. */
  params: AssumeRoleParams;
  /** Credentials used to call STS; otherwise the SDK's default chain. */
  masterCredentials?: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  /** Options for the STS client, e.g. `{ region: "eu-west-1" }`. */
  clientConfig?: Record<string, unknown>;
}

/**
 * STS AssumeRole credentials through the SDK's `fromTemporaryCredentials`, cached under
 * {@link temporaryCredentialsKey}: role ARN, session name and a digest of every other
 * parameter, the STS region and endpoint. A job with another ExternalId or a narrower
 * Policy never gets these credentials. With a Redis store a fleet makes one STS call per
 * rotation.
 *
 * The key cannot name the caller when `masterCredentials` is a provider (or the default
 * chain): processes that share a store are trusted to be allowed to assume the role.
 *
 * @example
 * ```ts
 * const credentials = fromCachedTemporaryCredentials({
 *   params: { RoleArn: "arn:aws:iam::123456789012:role/tenant", ExternalId: "tenant-7" },
 *   cache: await createCache("redis://cache:6379"),
 * });
 * ```
 */
export function fromCachedTemporaryCredentials(
  init: CachedTemporaryCredentialsInit,
): CachedCredentialProvider {
  const { params, masterCredentials, clientConfig, key, ...cacheOptions } = init;
  const sessionName = params.RoleSessionName ?? DEFAULT_SESSION_NAME;
  return fromCache({
    ...cacheOptions,
    key: key ?? temporaryCredentialsKey(params, { clientConfig, masterCredentials }),
    source: "sts",
    provider: lazyProvider((sdk) =>
      sdk.fromTemporaryCredentials({
        params: { ...params, RoleSessionName: sessionName } as never,
        ...(masterCredentials && { masterCredentials }),
        ...(clientConfig && { clientConfig }),
        ...sdkLogger(init.logger),
      } as never),
    ),
  });
}

export interface CachedIniInit extends PresetCacheOptions {
  /** The profile in `~/.aws/config` / `~/.aws/credentials`. @default AWS_PROFILE or "default" */
  profile?: string;
}

/**
 * A shared-config profile (assume-role, SSO, ...) through the SDK's `fromIni`, cached under
 * {@link iniKey}: the profile name and the config and credentials files it comes from.
 *
 * @example
 * ```ts
 * const credentials = fromCachedIni({ profile: "deploy", cache: fileCache() });
 * ```
 */
export function fromCachedIni(init: CachedIniInit = {}): CachedCredentialProvider {
  const { profile, key, ...cacheOptions } = init;
  const name = profile ?? process.env.AWS_PROFILE ?? "default";
  return fromCache({
    ...cacheOptions,
    key: key ?? iniKey(name),
    source: "profile",
    provider: lazyProvider((sdk) => sdk.fromIni({ profile: name, ...sdkLogger(init.logger) })),
  });
}
