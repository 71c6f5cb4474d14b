import { createHash } from "node:crypto";
import { hostname as osHostname } from "node:os";
import { join } from "node:path";
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from "@smithy/types";
import { type HostIdentityOptions, readHostIdentity, readSmallFile } from "./hostIdentity.js";
import {
  type KeyEnv,
  processTarget,
  profileChain,
  readSharedConfig,
  type SharedConfigOptions,
} from "./sharedConfig.js";

export type { KeyEnv };

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
export function digest(value: unknown): string {
  return createHash("sha256").update(canonicalJson(value)).digest("hex").slice(0, 32);
}

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

/** The largest token file read for a key; service-account tokens are about 1 KiB. */
const MAX_TOKEN_BYTES = 64 * 1024;

/** The claims of a JWT's payload, unverified (a key, not a check), or undefined for any other text. */
function jwtClaims(token: string): Record<string, unknown> | undefined {
  const payload = token.trim().split(".")[1];
  if (!payload) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
    return typeof claims === "object" && claims !== null && !Array.isArray(claims)
      ? (claims as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Who a bearer token names, as part of a key, never the token itself: the pod in a Kubernetes
 * service-account token (`pod:<namespace>/<name>/<uid>`), else a digest of its `iss`, `sub` and
 * `aud` (`claims:<digest>`), else a digest of the whole token (`token:<digest>`; it changes when
 * the token rotates). The claims stay the same across rotations, so the key does too.
 */
export function tokenIdentity(token: string): string {
  const k8s = jwtClaims(token)?.["kubernetes.io"] as
    | { namespace?: unknown; pod?: { name?: unknown; uid?: unknown } }
    | undefined;
  if (typeof k8s?.namespace === "string" && typeof k8s.pod?.uid === "string") {
    return `pod:${k8s.namespace}/${typeof k8s.pod.name === "string" ? k8s.pod.name : ""}/${k8s.pod.uid}`;
  }
  return tokenSubject(token);
}

/**
 * Who a token names for STS: a digest of its `iss`, `sub` and `aud` (`claims:<digest>`; every
 * pod of one service account shares it, across rotations), else a digest of the token
 * (`token:<digest>`).
 */
function tokenSubject(token: string): string {
  const claims = jwtClaims(token);
  const named = claims && { iss: claims.iss, sub: claims.sub, aud: claims.aud };
  if (named && (named.iss !== undefined || named.sub !== undefined || named.aud !== undefined)) {
    return `claims:${digest(named)}`;
  }
  return `token:${digest(token.trim())}`;
}

/** Kubernetes mounts the pod's namespace here, in every pod with a service account. */
const K8S_NAMESPACE_FILE = "var/run/secrets/kubernetes.io/serviceaccount/namespace";

/** A URI on this machine: what it serves is this host's, whatever token it is sent. */
function isLoopback(uri: string | undefined): boolean {
  try {
    const host = new URL(uri ?? "").hostname;
    return host === "localhost" || host === "[::1]" || host.startsWith("127.");
  } catch {
    return false;
  }
}

/**
 * What tells two containers apart when the URI and token file are the same for all of
 * them (EKS Pod Identity: one agent address and one token path on every node): who the
 * token names ({@link tokenIdentity}); a token that is no JWT, or a server on loopback, also
 * names the host. Without a token: the namespace file, the pod name (host name) and the
 * node's identity, else the host identity. Never the token path alone.
 */
function containerScope(settings: ContainerSettings, options: KeyOptions): string {
  const token = settings.tokenFile ? readSmallFile(settings.tokenFile, MAX_TOKEN_BYTES) : settings.token;
  if (token) {
    const named = tokenIdentity(token);
    const fleetWide = !named.startsWith("token:") && !isLoopback(settings.uri);
    return fleetWide ? named : `${named}@${hostPart(options)}`;
  }
  const namespace = readSmallFile(join(options.root ?? "/", K8S_NAMESPACE_FILE));
  const host = hostPart(options);
  if (namespace) return `k8s:${namespace}/${options.hostname ?? osHostname()}@${host}`;
  return host;
}

/**
 * The key {@link fromCachedContainerMetadata} uses:
 * `container:<URI>:<scope>:<digest of the token file path or the token>`. The URI is the
 * one the SDK calls (the relative URI on 169.254.170.2 wins over the full URI); the scope
 * tells apart containers that share URI and token path: who the token names (the pod's
 * namespace and uid in an EKS Pod Identity token, else the token's `iss`/`sub`/`aud`, else a
 * digest of the token), and without a token the Kubernetes namespace, pod name and node
 * identity, else the host identity. Two pods named `worker-0` in different namespaces get
 * different keys.
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

/** The STS region and endpoint the SDK's STS client will use, as far as they can be known before it runs. */
function stsTarget(
  env: KeyEnv,
  clientConfig: Record<string, unknown> = {},
): { region: string | null; endpoint: string | null } {
  return {
    region: settingText(clientConfig.region) ?? env.AWS_REGION ?? null,
    endpoint: settingText(clientConfig.endpoint) ?? env.AWS_ENDPOINT_URL_STS ?? env.AWS_ENDPOINT_URL ?? null,
  };
}

/** AssumeRoleWithWebIdentity parameters as the SDK's `fromTokenFile` / `fromWebToken` take them. */
export interface WebIdentityParams {
  roleArn: string;
  /** @default "credcache" ({@link DEFAULT_SESSION_NAME}; the SDK's own default changes at every call) */
  roleSessionName?: string | undefined;
  policy?: string | undefined;
  policyArns?: Array<{ arn?: string }> | undefined;
  durationSeconds?: number | undefined;
  providerId?: string | undefined;
}

/** What else goes into a web identity key. */
export interface WebIdentityKeyOptions extends KeyOptions {
  /** The STS client's options: `region` and `endpoint` go into the key. */
  clientConfig?: Record<string, unknown> | undefined;
  /** Name this host in the key, so hosts never share the set. @default false: one set per role and subject, fleet-wide */
  scopeToHost?: boolean | undefined;
}

/**
 * The key {@link fromCachedTokenFile} and {@link fromCachedWebIdentity} use:
 * `web-identity:<role ARN>:<session name>:<digest>`. The digest covers the policy, policy
 * ARNs, duration and provider id, the STS region and endpoint, and who the token names: its
 * `iss`, `sub` and `aud` (read from the JWT payload, unverified: a key, not a check), or a
 * digest of the token when it is not a JWT. Never the token itself, so the key stays when
 * Kubernetes rotates the token. Role credentials are not host-scoped: every host with the same
 * role and subject shares one set unless `scopeToHost` is set.
 *
 * @example
 * ```ts
 * webIdentityKey({ roleArn: "arn:aws:iam::123456789012:role/s3-reader" }, readFileSync(tokenFile, "utf8"));
 * // "web-identity:arn:aws:iam::123456789012:role/s3-reader:credcache:7c1d..."
 * ```
 */
export function webIdentityKey(
  params: WebIdentityParams,
  token: string,
  options: WebIdentityKeyOptions = {},
): string {
  const { roleArn, roleSessionName, ...rest } = params;
  const identity = {
    params: rest,
    ...stsTarget(options.env ?? process.env, options.clientConfig),
    token: tokenSubject(token),
    host: options.scopeToHost ? hostPart(options) : null,
  };
  return `web-identity:${roleArn}:${roleSessionName ?? DEFAULT_SESSION_NAME}:${digest(identity)}`;
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
  const master = options.masterCredentials;
  const identity = {
    params: rest,
    ...stsTarget(env, options.clientConfig),
    caller: typeof master === "object" && master !== null ? master.accessKeyId : null,
  };
  return `sts:${RoleArn}:${RoleSessionName ?? DEFAULT_SESSION_NAME}:${digest(identity)}`;
}

/** Where the shared config files are read from and, for host-scoped profiles, which host this is. */
export interface IniKeyOptions extends KeyOptions, SharedConfigOptions {}

/** Profile values whose credentials come from this host: a program, a metadata service, an SSO login, a token file. */
const HOST_SCOPED_SETTINGS = [
  "credential_process",
  "credential_source",
  "sso_session",
  "sso_start_url",
  "web_identity_token_file",
  "login_session",
];

/**
 * The key {@link fromCachedIni} uses: `profile:<name>:<digest>`. The digest names what the
 * SDK will read for the profile: the config and credentials files (absolute paths, device
 * and inode), the resolved profile and every `source_profile` it takes credentials from (the
 * values themselves, the `sso-session` it names), the program each `credential_process`
 * runs (found on PATH, with its device and inode), and this host's identity unless the
 * credentials come from static keys in the files. Two containers with the same `$HOME` and
 * identical config text still get their own keys; two processes reading the same files on
 * one host share one.
 *
 * @example
 * ```ts
 * iniKey("deploy"); // "profile:deploy:1f3e..."
 * ```
 */
export function iniKey(profile: string, options: IniKeyOptions = {}): string {
  const env = options.env ?? process.env;
  const config = readSharedConfig(options);
  const chain = profileChain(config, profile);
  const sessions = chain.map((link) => link.section.sso_session).filter((name) => name !== undefined);
  const hostScoped = chain.some((link) =>
    HOST_SCOPED_SETTINGS.some((name) => link.section[name] !== undefined),
  );
  const last = chain.at(-1)?.section ?? {};
  const identity = {
    files: [config.config, config.credentials],
    chain,
    ssoSessions: sessions.map((name) => config.ssoSessions[name] ?? null),
    programs: chain.flatMap((link) =>
      link.section.credential_process ? [processTarget(link.section.credential_process, env)] : [],
    ),
    host: hostScoped || last.aws_access_key_id === undefined ? hostPart(options) : null,
  };
  return `profile:${profile}:${digest(identity)}`;
}
