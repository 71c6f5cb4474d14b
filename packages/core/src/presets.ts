import { createHash } from "node:crypto";
import { homedir, hostname as osHostname } from "node:os";
import { join, resolve } from "node:path";
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider, Logger } from "@smithy/types";
import { MissingAdapterError } from "./errors.js";
import { type CachedCredentialProvider, type FromCacheInit, fromCache } from "./fromCache.js";
import { type HostIdentityOptions, readHostIdentity, readSmallFile } from "./hostIdentity.js";

/** `fromCache` options a preset accepts; the preset supplies `provider`, `key` and `source`. */
export type PresetCacheOptions = Omit<FromCacheInit, "provider" | "key" | "source"> & {
  /** Overrides the key the preset builds. Give each principal its own. */
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

/**
 * The logger handed to the SDK: its debug, warn and error lines, never info. SDK clients (STS
 * for assume-role and role profiles) log every command's output at info, and AssumeRole's
 * session token is not marked sensitive there: it would reach the caller's logger in clear.
 */
function sdkLogger(logger: Logger | undefined): { logger: Logger } | Record<string, never> {
  if (!logger) return {};
  return {
    logger: {
      debug: (...content) => logger.debug(...content),
      info: () => {},
      warn: (...content) => logger.warn(...content),
      error: (...content) => logger.error(...content),
    },
  };
}

/** JSON with object keys sorted at every level and `undefined` dropped: equal data, equal text. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_name, v: unknown) => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const name of Object.keys(v).sort()) sorted[name] = (v as Record<string, unknown>)[name];
    return sorted;
  });
}

/** 32 hex chars (128 bits) of SHA-256: part of a key, never reversible to what it names. */
function digest(value: unknown): string {
  return createHash("sha256").update(canonicalJson(value)).digest("hex").slice(0, 32);
}

/** Environment variables the preset keys are built from. */
export type KeyEnv = Record<string, string | undefined>;

/** Where a preset key is computed for. Tests and tools inject these; the defaults are this process's. */
export interface KeyOptions extends HostIdentityOptions {
  /**
   * This host's identity as it goes into instance and container keys, instead of the one
   * {@link readHostIdentity} finds. Two hosts must never share it.
   * @default readHostIdentity(), e.g. "instance-id:i-0123456789abcdef0"
   */
  host?: string;
  /** @default process.env */
  env?: KeyEnv;
}

/** The host part of instance and container keys: `<kind>:<id>` (see {@link readHostIdentity}). */
function hostPart(options: KeyOptions): string {
  if (options.host !== undefined) return options.host;
  const { kind, id } = readHostIdentity({
    ...(options.root !== undefined && { root: options.root }),
    ...(options.hostname !== undefined && { hostname: options.hostname }),
  });
  return `${kind}:${id}`;
}

/** Where the SDK will look for IMDS, so two endpoints never share a key. */
function imdsEndpoint(env: KeyEnv): string {
  if (env.AWS_EC2_METADATA_SERVICE_ENDPOINT) return env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
  return env.AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE?.toLowerCase() === "ipv6"
    ? "http://[fd00:ec2::254]"
    : "http://169.254.169.254";
}

/** The session name used when AssumeRole params name none, so the key stays stable. */
export const DEFAULT_SESSION_NAME = "credcache";

/**
 * The key {@link fromCachedInstanceMetadata} uses on this host:
 * `imds:<endpoint>:<host identity>`. The endpoint is the one the SDK will call
 * (`AWS_EC2_METADATA_SERVICE_ENDPOINT`, or the IPv4/IPv6 link-local address); the host
 * identity is {@link readHostIdentity}'s, e.g. `instance-id:i-0123456789abcdef0`.
 * Instance credentials stay on their host only as far as that identity is unique.
 *
 * @example
 * ```ts
 * instanceMetadataKey(); // "imds:http://169.254.169.254:instance-id:i-0123456789abcdef0"
 * ```
 */
export function instanceMetadataKey(options: KeyOptions = {}): string {
  return `imds:${imdsEndpoint(options.env ?? process.env)}:${hostPart(options)}`;
}

/** The container-credentials settings the SDK's `fromHttp` reads, in its order of precedence. */
interface ContainerSettings {
  /** What the SDK calls: the relative URI on 169.254.170.2 wins over the full URI. */
  uri: string | undefined;
  /** The token file wins over the token. */
  tokenFile: string | undefined;
  token: string | undefined;
}

function containerSettings(env: KeyEnv): ContainerSettings {
  const relative = env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI || undefined;
  const tokenFile = env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE || undefined;
  return {
    uri: relative ? `http://169.254.170.2${relative}` : env.AWS_CONTAINER_CREDENTIALS_FULL_URI || undefined,
    tokenFile,
    token: tokenFile ? undefined : env.AWS_CONTAINER_AUTHORIZATION_TOKEN || undefined,
  };
}

/** The pod named in a Kubernetes service-account token (EKS Pod Identity's token file is one). */
function podOfToken(tokenFile: string): string | undefined {
  const payload = readSmallFile(tokenFile, 64 * 1024)?.split(".")[1];
  if (!payload) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
    const k8s = claims?.["kubernetes.io"];
    if (typeof k8s?.namespace !== "string" || typeof k8s?.pod?.uid !== "string") return undefined;
    return `pod:${k8s.namespace}/${typeof k8s.pod.name === "string" ? k8s.pod.name : ""}/${k8s.pod.uid}`;
  } catch {
    return undefined;
  }
}

/** Kubernetes mounts the pod's namespace here, in every pod with a service account. */
const K8S_NAMESPACE_FILE = "var/run/secrets/kubernetes.io/serviceaccount/namespace";

/**
 * What tells two containers apart when the URI and token file are the same for all of
 * them (EKS Pod Identity: one agent address and one token path on every node):
 * the pod's namespace and uid from the token, else the namespace file, the pod name (host
 * name) and the node's identity, else the host identity.
 */
function containerScope(settings: ContainerSettings, options: KeyOptions): string {
  const pod = settings.tokenFile ? podOfToken(settings.tokenFile) : undefined;
  if (pod) return pod;
  const namespace = readSmallFile(join(options.root ?? "/", K8S_NAMESPACE_FILE));
  const host = hostPart(options);
  if (namespace) return `k8s:${namespace}/${options.hostname ?? osHostname()}@${host}`;
  return host;
}

/**
 * The key {@link fromCachedContainerMetadata} uses:
 * `container:<URI>:<scope>:<digest of the token file path or the token>`. The URI is the
 * one the SDK calls (the relative URI on 169.254.170.2 wins over the full URI); the scope
 * tells apart containers that share URI and token path: the namespace and pod uid in the
 * token file (EKS Pod Identity), else the Kubernetes namespace, pod name and node identity,
 * else the host identity. Two pods named `worker-0` in different namespaces get different keys.
 *
 * @example
 * ```ts
 * containerMetadataKey(); // "container:http://169.254.170.23/v1/credentials:pod:prod/worker-0/6f1c...:9a2b..."
 * ```
 */
export function containerMetadataKey(options: KeyOptions = {}): string {
  const settings = containerSettings(options.env ?? process.env);
  // The token's digest, never the token: keys appear in events and in `credcache inspect`.
  const auth = settings.tokenFile
    ? { tokenFile: settings.tokenFile }
    : settings.token
      ? { token: digest(settings.token) }
      : {};
  return `container:${settings.uri ?? "unset"}:${containerScope(settings, options)}:${digest(auth)}`;
}

/** AssumeRole parameters as the SDK's `fromTemporaryCredentials` takes them. */
export interface AssumeRoleParams {
  RoleArn: string;
  /** @default "credcache" ({@link DEFAULT_SESSION_NAME}), so the key is stable */
  RoleSessionName?: string;
  DurationSeconds?: number;
  ExternalId?: string;
  Policy?: string;
  PolicyArns?: Array<{ arn?: string }>;
  Tags?: Array<{ Key?: string; Value?: string }>;
  TransitiveTagKeys?: string[];
  SourceIdentity?: string;
  SerialNumber?: string;
  /** The MFA code of this call: not part of the key (it changes every time, the result does not). */
  TokenCode?: string;
  [name: string]: unknown;
}

/** What else goes into an assume-role key. */
export interface TemporaryCredentialsKeyOptions {
  /** The STS client's options: `region` and `endpoint` go into the key. */
  clientConfig?: Record<string, unknown> | undefined;
  /** Static caller credentials: their access key id goes into the key (a provider's cannot). */
  masterCredentials?: AwsCredentialIdentity | AwsCredentialIdentityProvider | undefined;
  /** For the STS region and endpoint the SDK would take from the environment. @default process.env */
  env?: KeyEnv;
}

/** A region or endpoint setting as text; a provider function cannot be known before it runs. */
function settingText(value: unknown): string | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value === "string") return value;
  if (typeof value === "function") return "(provider)";
  if (value instanceof URL) return value.href;
  return canonicalJson(value);
}

/**
 * The key {@link fromCachedTemporaryCredentials} uses:
 * `sts:<role ARN>:<session name>:<digest>`. The digest covers every other AssumeRole
 * parameter that changes the credentials (ExternalId, Policy, PolicyArns, Tags,
 * TransitiveTagKeys, SourceIdentity, DurationSeconds, SerialNumber, and any other but
 * TokenCode), the STS region and endpoint, and the access key id of static
 * `masterCredentials`. Equal parameters in any order give the same key.
 *
 * @example
 * ```ts
 * temporaryCredentialsKey({ RoleArn: "arn:aws:iam::123456789012:role/app", ExternalId: "tenant-7" }, { clientConfig: { region: "eu-west-1" } });
 * // "sts:arn:aws:iam::123456789012:role/app:credcache:5d0c..."
 * ```
 */
export function temporaryCredentialsKey(
  params: AssumeRoleParams,
  options: TemporaryCredentialsKeyOptions = {},
): string {
  const { RoleArn, RoleSessionName, TokenCode: _tokenCode, ...rest } = params;
  const env = options.env ?? process.env;
  const clientConfig = options.clientConfig ?? {};
  const master = options.masterCredentials;
  const identity = {
    params: rest,
    region: settingText(clientConfig.region) ?? env.AWS_REGION ?? null,
    endpoint: settingText(clientConfig.endpoint) ?? env.AWS_ENDPOINT_URL_STS ?? env.AWS_ENDPOINT_URL ?? null,
    caller: typeof master === "object" && master !== null ? master.accessKeyId : null,
  };
  return `sts:${RoleArn}:${RoleSessionName ?? DEFAULT_SESSION_NAME}:${digest(identity)}`;
}

/** Where the shared config files are read from, as the SDK resolves them. */
export interface IniKeyOptions {
  /** @default process.env */
  env?: KeyEnv;
  /** Base of a relative `AWS_CONFIG_FILE`. @default process.cwd() */
  cwd?: string;
}

/**
 * The key {@link fromCachedIni} uses: `profile:<name>:<digest of the config and credentials
 * file paths>`. The paths are the SDK's (`AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE`,
 * else `~/.aws/config` and `~/.aws/credentials`), made absolute, so two projects with their
 * own files and the same profile name get their own keys.
 *
 * @example
 * ```ts
 * iniKey("deploy"); // "profile:deploy:1f3e..."
 * ```
 */
export function iniKey(profile: string, options: IniKeyOptions = {}): string {
  const env = options.env ?? process.env;
  const home = env.HOME || env.USERPROFILE || homedir();
  const absolute = (path: string): string =>
    resolve(options.cwd ?? process.cwd(), path.startsWith("~/") ? join(home, path.slice(2)) : path);
  const files = {
    config: absolute(env.AWS_CONFIG_FILE || join(home, ".aws", "config")),
    credentials: absolute(env.AWS_SHARED_CREDENTIALS_FILE || join(home, ".aws", "credentials")),
  };
  return `profile:${profile}:${digest(files)}`;
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
        ...sdkLogger(init.logger),
      }),
    ),
  });
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
  const { timeout, maxRetries, key, env = process.env, ...cacheOptions } = init;
  return fromCache({
    ...cacheOptions,
    key: key ?? containerMetadataKey({ env }),
    source: "container",
    provider: lazyProvider((sdk) =>
      sdk.fromHttp({
        // "" and not undefined: fromHttp falls back to process.env for an undefined option.
        awsContainerCredentialsRelativeUri: env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI ?? "",
        awsContainerCredentialsFullUri: env.AWS_CONTAINER_CREDENTIALS_FULL_URI ?? "",
        awsContainerAuthorizationToken: env.AWS_CONTAINER_AUTHORIZATION_TOKEN ?? "",
        awsContainerAuthorizationTokenFile: env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE ?? "",
        ...(timeout !== undefined && { timeout }),
        maxRetries: maxRetries ?? PRESET_METADATA_MAX_RETRIES,
        ...sdkLogger(init.logger),
      }),
    ),
  });
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
