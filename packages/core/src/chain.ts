import type { Logger } from "@smithy/types";
import type { CachedCredentialProvider } from "./fromCache.js";
import {
  containerMetadataKey,
  digest,
  iniKey,
  instanceMetadataKey,
  type KeyEnv,
  type KeyOptions,
} from "./keys.js";
import { containerMetadataSource, instanceMetadataSource, type MetadataSourceInit } from "./presets.js";
import { lazyProvider, sdkLogger } from "./sdkProviders.js";
import { type IniSection, profileName, readSharedConfig } from "./sharedConfig.js";
import { cachePlan, type PresetCacheOptions, type SourcePlan } from "./sourcePlan.js";
import { tokenFileSource } from "./webIdentity.js";

/** Where the chain looks, and what it passes on to the source it picks. */
export interface NodeProviderChainSourceInit {
  /** The profile to use instead of AWS_PROFILE (as the SDK's `profile` option). */
  profile?: string;
  /**
   * Where the chain's variables are read to work out the source and its key. The SDK's
   * providers read `process.env` whatever this holds (the container source alone takes these
   * values): pass another only to compute plans and keys, e.g. in tools and tests.
   * @default process.env
   */
  env?: KeyEnv;
  /** Base of a relative AWS_CONFIG_FILE. @default process.cwd() */
  cwd?: string;
  /** This host's identity in host-scoped keys. @default readHostIdentity() */
  host?: string;
  /** The STS client's options for web identity (`region`, `endpoint`). */
  clientConfig?: Record<string, unknown>;
  /** Container and IMDS: per-request timeout in ms. @default 1000 */
  timeout?: number;
  /** Container and IMDS: retries. @default 2 (the SDK's IMDS default is 0) */
  maxRetries?: number;
  logger?: Logger;
}

export interface CachedNodeProviderChainInit extends NodeProviderChainSourceInit, PresetCacheOptions {}

/** What the SDK's ini link would do with a profile, mirroring `resolveProfileData`'s tests in order. */
type ProfileKind = "assume-role" | "static" | "web-identity" | "process" | "sso" | "login" | undefined;

function profileKind(section: IniSection | undefined): ProfileKind {
  if (!section) return undefined;
  if (
    section.role_arn !== undefined &&
    (section.source_profile !== undefined || section.credential_source !== undefined)
  ) {
    return "assume-role";
  }
  if (section.aws_access_key_id !== undefined && section.aws_secret_access_key !== undefined) return "static";
  if (section.web_identity_token_file !== undefined && section.role_arn !== undefined) return "web-identity";
  if (section.credential_process !== undefined) return "process";
  if (
    ["sso_start_url", "sso_account_id", "sso_session", "sso_region", "sso_role_name"].some(
      (n) => section[n] !== undefined,
    )
  ) {
    return "sso";
  }
  if (section.login_session !== undefined) return "login";
  return undefined;
}

/** Settings that name a credential source: a profile holding some but no complete source is one the chain may use or skip. */
const CREDENTIAL_SETTING =
  /^(aws_access_key_id|aws_secret_access_key|aws_session_token|role_arn|source_profile|credential_source|credential_process|web_identity_token_file|sso_|login_)/;

function metadataOptions(
  init: NodeProviderChainSourceInit,
  env: KeyEnv,
): MetadataSourceInit & { env: KeyEnv } {
  return { env, timeout: init.timeout, maxRetries: init.maxRetries, host: init.host, logger: init.logger };
}

function keyOptions(init: NodeProviderChainSourceInit, env: KeyEnv): KeyOptions & { cwd?: string } {
  return {
    env,
    ...(init.host !== undefined && { host: init.host }),
    ...(init.cwd !== undefined && { cwd: init.cwd }),
  };
}

/**
 * The source the SDK's default chain (`fromNodeProviderChain`, @aws-sdk/credential-provider-node)
 * would use here, worked out from the environment and the config files before any fetch, with
 * the key its sets are cached under. The order and rules are the SDK's:
 *
 * 1. `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY`, unless a profile is set (`AWS_PROFILE` or
 *    `profile`): `env`, passed through, never stored (key `undefined`).
 * 2. SSO with init fields: not taken (this init has none), as the chain skips it.
 * 3. The profile (`profile`, `AWS_PROFILE`, else `default`) when it holds a source the SDK's
 *    ini link resolves (assume-role, static keys, web identity, `credential_process`, SSO,
 *    login): `profile`, keyed by {@link iniKey}. A `credential_process` profile is the ini
 *    link's too, so the process link adds nothing.
 * 4. `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`: `web-identity`, keyed by {@link webIdentityKey}.
 * 5. `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` or `_FULL_URI`: `container`, keyed by
 *    {@link containerMetadataKey}, fetched with `fromHttp` (the SDK then tries
 *    `fromContainerMetadata`, whose allowed hosts are a subset of `fromHttp`'s: it adds nothing).
 * 6. `AWS_EC2_METADATA_DISABLED` (other than "false"): no source; the fetch fails as the SDK's does.
 * 7. Else IMDS: `imds`, keyed by {@link instanceMetadataKey}.
 *
 * Where the choice cannot be made before fetching, the plan is `chain`: the SDK's own chain,
 * under a key that names everything the chain reads. That is a profile with some credential
 * settings but no complete source (the SDK may use it or skip it, depending on the run).
 */
export function nodeProviderChainSource(init: NodeProviderChainSourceInit = {}): SourcePlan {
  const env = init.env ?? process.env;
  const options = keyOptions(init, env);
  const chosenProfile = init.profile ?? (env.AWS_PROFILE || undefined);
  if (!chosenProfile && env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
    return {
      source: "env",
      key: undefined,
      provider: lazyProvider((sdk) => sdk.fromEnv(sdkLogger(init.logger))),
    };
  }
  const profile = chosenProfile ?? profileName(env);
  const section = readSharedConfig(options).profiles[profile];
  if (profileKind(section) !== undefined) {
    return {
      source: "profile",
      key: iniKey(profile, options),
      provider: lazyProvider((sdk) => sdk.fromIni({ profile, ...sdkLogger(init.logger) })),
    };
  }
  if (section && Object.keys(section).some((name) => CREDENTIAL_SETTING.test(name))) {
    return chainPlan(init, env, profile);
  }
  if (env.AWS_WEB_IDENTITY_TOKEN_FILE && env.AWS_ROLE_ARN) {
    return tokenFileSource({
      env,
      ...(init.clientConfig && { clientConfig: init.clientConfig }),
      ...(init.logger && { logger: init.logger }),
    });
  }
  if (env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI || env.AWS_CONTAINER_CREDENTIALS_FULL_URI) {
    return containerMetadataSource(metadataOptions(init, env));
  }
  if (env.AWS_EC2_METADATA_DISABLED && env.AWS_EC2_METADATA_DISABLED !== "false") {
    // The SDK's chain ends here with an error; so does this plan, without a key to fill.
    return {
      source: "none",
      key: undefined,
      provider: lazyProvider((sdk) => sdk.fromNodeProviderChain(sdkLogger(init.logger))),
    };
  }
  return instanceMetadataSource(metadataOptions(init, env));
}

/** The SDK's chain itself, under a key naming everything it reads: every source's key inputs and the host. */
function chainPlan(init: NodeProviderChainSourceInit, env: KeyEnv, profile: string): SourcePlan {
  const options = keyOptions(init, env);
  const parts = [
    iniKey(profile, options),
    env.AWS_WEB_IDENTITY_TOKEN_FILE && env.AWS_ROLE_ARN
      ? tokenFileSource({ env, scopeToHost: true, ...(init.host !== undefined && { host: init.host }) }).key
      : "",
    env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI || env.AWS_CONTAINER_CREDENTIALS_FULL_URI
      ? containerMetadataKey(options)
      : "",
    instanceMetadataKey(options),
  ];
  return {
    source: "chain",
    key: `chain:${profile}:${digest(parts)}`,
    provider: lazyProvider((sdk) => sdk.fromNodeProviderChain({ profile, ...sdkLogger(init.logger) })),
  };
}

/**
 * A drop-in for the SDK's default chain (`fromNodeProviderChain`), cached: the same sources in
 * the same order with the same environment variables and profile rules, worked out before
 * fetching ({@link nodeProviderChainSource}), each cached under its own identity-complete key.
 * Static keys from the environment are passed through and never stored.
 *
 * The choice is made once, when the provider is created, from the environment and files as
 * they are then (the SDK's chain reads them at its first call). A client's own `profile`
 * option is not seen: pass `profile` here instead.
 *
 * @example
 * ```ts
 * import { S3Client } from "@aws-sdk/client-s3";
 * import { fromCachedNodeProviderChain } from "@credcache/core";
 * import { fileCache } from "@credcache/fs";
 *
 * const s3 = new S3Client({ credentials: fromCachedNodeProviderChain({ cache: fileCache() }) });
 * ```
 */
export function fromCachedNodeProviderChain(
  init: CachedNodeProviderChainInit = {},
): CachedCredentialProvider {
  const { profile, env, cwd, host, clientConfig, timeout, maxRetries, ...cacheOptions } = init;
  const plan = nodeProviderChainSource(init);
  // Like fromCachedInstanceMetadata: the SDK's own static stability for IMDS.
  return cachePlan(plan, { ...(plan.source === "imds" && { staleIfError: true }), ...cacheOptions });
}
