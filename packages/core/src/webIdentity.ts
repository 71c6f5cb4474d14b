import type { Logger } from "@smithy/types";
import type { CachedCredentialProvider } from "./fromCache.js";
import { readSmallFile } from "./hostIdentity.js";
import {
  DEFAULT_SESSION_NAME,
  type KeyEnv,
  type WebIdentityKeyOptions,
  type WebIdentityParams,
  webIdentityKey,
} from "./keys.js";
import { lazyProvider, sdkLogger } from "./sdkProviders.js";
import { cachePlan, type PresetCacheOptions, type SourcePlan } from "./sourcePlan.js";

/** The largest token file read for a key; projected service-account tokens are about 1 KiB. */
const MAX_TOKEN_BYTES = 64 * 1024;

/** Options both web identity presets take besides the cache's. */
interface WebIdentityOptions extends Partial<WebIdentityParams> {
  /** Options for the STS client, e.g. `{ region: "eu-west-1" }`; `region` and `endpoint` go into the key. */
  clientConfig?: Record<string, unknown>;
  /**
   * Name this host in the key. Off by default: role credentials from STS are not tied to a
   * host, so on a shared Redis every host with the same role and token subject shares one
   * `AssumeRoleWithWebIdentity` per rotation. Set it to keep each host's sets its own.
   * @default false
   */
  scopeToHost?: boolean;
  /** This host's identity in the key when `scopeToHost` is set. @default readHostIdentity() */
  host?: string;
  logger?: Logger;
}

export interface TokenFileSourceInit extends WebIdentityOptions {
  /** @default AWS_WEB_IDENTITY_TOKEN_FILE */
  webIdentityTokenFile?: string;
  /** @default env.AWS_ROLE_ARN; `roleSessionName` defaults to AWS_ROLE_SESSION_NAME, else "credcache" */
  roleArn?: string;
  /** Where AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN, AWS_ROLE_SESSION_NAME, AWS_REGION and AWS_ENDPOINT_URL_STS are read. @default process.env */
  env?: KeyEnv;
}

export interface CachedTokenFileInit extends TokenFileSourceInit, PresetCacheOptions {}

/** The init options that describe the source; the rest go to `fromCache`. */
const SOURCE_OPTIONS = [
  "webIdentityTokenFile",
  "webIdentityToken",
  "roleArn",
  "roleSessionName",
  "policy",
  "policyArns",
  "durationSeconds",
  "providerId",
  "clientConfig",
  "scopeToHost",
  "host",
  "env",
] as const;

function cacheOptionsOf(
  init: PresetCacheOptions & Partial<Record<(typeof SOURCE_OPTIONS)[number], unknown>>,
): PresetCacheOptions {
  const options: Record<string, unknown> = { ...init };
  for (const name of SOURCE_OPTIONS) delete options[name];
  return options as PresetCacheOptions;
}

/** The key options both presets build from their init. */
function keyOptions(init: WebIdentityOptions, env: KeyEnv): WebIdentityKeyOptions {
  return {
    env,
    ...(init.clientConfig && { clientConfig: init.clientConfig }),
    ...(init.scopeToHost && { scopeToHost: true }),
    ...(init.host !== undefined && { host: init.host }),
  };
}

function paramsOf(
  init: WebIdentityOptions,
  roleArn: string,
  sessionName: string | undefined,
): WebIdentityParams {
  return {
    roleArn,
    roleSessionName: sessionName ?? DEFAULT_SESSION_NAME,
    ...(init.policy !== undefined && { policy: init.policy }),
    ...(init.policyArns !== undefined && { policyArns: init.policyArns }),
    ...(init.durationSeconds !== undefined && { durationSeconds: init.durationSeconds }),
    ...(init.providerId !== undefined && { providerId: init.providerId }),
  };
}

/**
 * The web identity token file source (EKS IRSA): the SDK's `fromTokenFile`, and its key
 * ({@link webIdentityKey}) built from the token the file holds now. The fetch reads the file
 * again each time, so a rotated token is sent; its claims, and so the key, stay the same.
 */
export function tokenFileSource(init: TokenFileSourceInit = {}): SourcePlan {
  const env = init.env ?? process.env;
  const tokenFile = init.webIdentityTokenFile ?? env.AWS_WEB_IDENTITY_TOKEN_FILE ?? "";
  const params = paramsOf(
    init,
    init.roleArn ?? env.AWS_ROLE_ARN ?? "",
    init.roleSessionName ?? env.AWS_ROLE_SESSION_NAME,
  );
  // An unreadable file now: the fetch fails too (the SDK reads it then); its key names no subject.
  const token = readSmallFile(tokenFile, MAX_TOKEN_BYTES) ?? "";
  return {
    source: "web-identity",
    key: webIdentityKey(params, token, keyOptions(init, env)),
    provider: lazyProvider((sdk) =>
      sdk.fromTokenFile({
        ...params,
        webIdentityTokenFile: tokenFile,
        ...(init.clientConfig && { clientConfig: init.clientConfig }),
        ...sdkLogger(init.logger),
      } as never),
    ),
  };
}

/**
 * Web identity (EKS IRSA, any OIDC provider) through the SDK's `fromTokenFile`, cached under
 * {@link webIdentityKey}: role ARN, session name, policy, policy ARNs, duration, STS region and
 * endpoint, and the token's `iss`/`sub`/`aud`. With a shared Redis, every pod and host with
 * the same role and service account makes one `AssumeRoleWithWebIdentity` per rotation
 * (set `scopeToHost` to keep hosts apart). Kubernetes rotates the projected token about
 * hourly: the fetch reads the current token, and the key stays the same.
 *
 * @example
 * ```ts
 * // On EKS with IRSA the environment holds AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE.
 * const credentials = fromCachedTokenFile({ cache: await createCache("redis://cache:6379") }); // createCache: @credcache/config
 * ```
 */
export function fromCachedTokenFile(init: CachedTokenFileInit = {}): CachedCredentialProvider {
  return cachePlan(tokenFileSource(init), cacheOptionsOf(init));
}

export interface WebTokenSourceInit extends WebIdentityOptions {
  /** The OIDC token itself. */
  webIdentityToken: string;
  roleArn: string;
  /** For AWS_REGION and AWS_ENDPOINT_URL_STS in the key. @default process.env */
  env?: KeyEnv;
}

export interface CachedWebIdentityInit extends WebTokenSourceInit, PresetCacheOptions {}

/** A web identity token in hand: the SDK's `fromWebToken` and its key ({@link webIdentityKey}). */
export function webTokenSource(init: WebTokenSourceInit): SourcePlan {
  const env = init.env ?? process.env;
  const params = paramsOf(init, init.roleArn, init.roleSessionName);
  return {
    source: "web-identity",
    key: webIdentityKey(params, init.webIdentityToken, keyOptions(init, env)),
    provider: lazyProvider((sdk) =>
      sdk.fromWebToken({
        ...params,
        webIdentityToken: init.webIdentityToken,
        ...(init.clientConfig && { clientConfig: init.clientConfig }),
        ...sdkLogger(init.logger),
      } as never),
    ),
  };
}

/**
 * A web identity token in hand (Cognito, any OIDC provider) through the SDK's `fromWebToken`,
 * cached under {@link webIdentityKey}: the token's `iss`/`sub`/`aud`, never the token.
 *
 * @example
 * ```ts
 * const credentials = fromCachedWebIdentity({ webIdentityToken: idToken, roleArn, cache: fileCache() });
 * ```
 */
export function fromCachedWebIdentity(init: CachedWebIdentityInit): CachedCredentialProvider {
  return cachePlan(webTokenSource(init), cacheOptionsOf(init));
}
