import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import {
  type Clock,
  CredentialRotation,
  type CredentialSet,
  type CredentialSummary,
  credentialsDocument,
  ec2Time,
  malformedDocument,
  randomInstanceProfileId,
  summarize,
} from "./credentials.js";
import { FaultPlan, type ImdsFault, type ImdsFaultRoute, type ImdsFaults } from "./faults.js";
import { answerSts, type StsAnswer, type StsCall, type StsOptions, stsError, throttled } from "./sts.js";

/** Options of {@link startImdsEmulator}. Every option is optional. */
export interface ImdsEmulatorOptions {
  /**
   * TCP port to listen on; 0 picks a free one (read it back from `port` / `url`).
   * @default 0
   */
  port?: number;
  /**
   * Interface to listen on.
   * @default "127.0.0.1"
   */
  host?: string;
  /**
   * Require a session token on every GET (EC2's `HttpTokens: required`). When false,
   * IMDSv1 GETs without a token are answered, but a GET carrying an unknown or expired
   * token is still refused with 401, as on EC2.
   * @default false
   */
  imdsv2Only?: boolean;
  /**
   * Name of the instance profile's role.
   * @default "credcache-demo-role"
   */
  role?: string;
  /**
   * 12-digit account id, served as `AccountId` by `security-credentials-extended` and used in `iam/info`.
   * @default "123456789012"
   */
  accountId?: string;
  /**
   * Served at `placement/region`.
   * @default "us-east-1"
   */
  region?: string;
  /**
   * Served at `instance-id`.
   * @default "i-0123456789abcdef0"
   */
  instanceId?: string;
  /**
   * How long each credential set is valid, in ms.
   * @default 21_600_000 (6 hours)
   */
  lifetimeMs?: number;
  /**
   * A new credential set is served from this long before the current one expires, in ms.
   * EC2 documents at least 5 minutes. Must be smaller than `lifetimeMs`.
   * @default 300_000 (5 minutes)
   */
  leadMs?: number;
  /**
   * Source of time for token expiry and credential rotation. Inject one to compress time in
   * tests and benchmarks. Real SDK clients compare `Expiration` with their own `Date.now()`.
   * @default Date
   */
  clock?: Clock;
  /**
   * Faults in force from the start; see {@link ImdsFault}. Change them later with `setFaults`.
   * @default {}
   */
  faults?: ImdsFaults;
  /**
   * Log one line per request (method, path, status) to stderr. Never logs tokens or secrets.
   * @default false
   */
  verbose?: boolean;
  /** STS (`POST /`, query protocol): which roles exist and which web identity subjects each trusts. */
  sts?: StsOptions;
  /**
   * The `Authorization` value the container-credentials routes require (`GET /v2/credentials/<id>`,
   * `GET /v1/credentials`); change it later with `setContainerToken`. Unset: no token needed.
   */
  containerToken?: string;
  /**
   * The SSO access token the portal route (`GET /federation/credentials`, SSO GetRoleCredentials)
   * requires in `x-amz-sso_bearer_token`. Unset: any token is accepted.
   */
  ssoAccessToken?: string;
}

/** Request routes counted by {@link ImdsStats}. */
export type ImdsRoute = "token" | "role" | "credentials" | "extended" | "sts" | "container" | "sso" | "other";

/** Counters since start or the last `resetStats()`. A snapshot: read `stats` again for new values. */
export interface ImdsStats {
  /** Requests received, per route, and in total. */
  requests: Record<ImdsRoute, number> & { total: number };
  /** Responses sent, per HTTP status code, e.g. `statuses[401]`. Hung and reset requests have none. */
  statuses: Record<number, number>;
  /** GET requests that carried an `X-aws-ec2-metadata-token` header (IMDSv2) and that did not (IMDSv1). */
  reads: { withToken: number; withoutToken: number };
  /** Session tokens issued (successful token PUTs). */
  tokensIssued: number;
  /** Responses that carried a credentials document (normal, extended or `expired`; not `malformed`). */
  credentialFetches: number;
  /** Distinct credential sets (by AccessKeyId) served in those documents. */
  credentialSets: number;
  /** Requests a fault was applied to. */
  faultsInjected: number;
  /** Requests left unanswered by a `hang` fault. */
  hangs: number;
  /** Connections reset by a `reset` fault. */
  resets: number;
  /** STS calls answered, per outcome; every call is in `stsCalls()`. */
  sts: { assumeRole: number; assumeRoleWithWebIdentity: number; throttled: number; refused: number };
  /** Container-credentials documents served. */
  containerFetches: number;
  /** SSO role credentials served by the portal route. */
  ssoFetches: number;
}

/** A running emulator. */
export interface ImdsEmulator {
  /** Base URL, e.g. `http://127.0.0.1:41234`: the value for `AWS_EC2_METADATA_SERVICE_ENDPOINT`. */
  readonly url: string;
  /** The port actually listened on. */
  readonly port: number;
  /** A fresh snapshot of the counters on each read. */
  readonly stats: ImdsStats;
  /** The credential set that would be served now (rotating first if it is due). No secrets. */
  currentCredentials(): CredentialSummary;
  /** Issues a new credential set now and returns it. */
  rotate(): CredentialSummary;
  /** Replaces all faults; `undefined` or `{}` clears them. Throws on a malformed fault. */
  setFaults(faults?: ImdsFaults): void;
  /** Every STS call since start or the last `resetStats()`, in order; no tokens, no secrets. */
  stsCalls(): StsCall[];
  /** The `Authorization` value the container routes require from now on (`undefined`: none). */
  setContainerToken(token: string | undefined): void;
  /** Zeroes the counters. Does not forget `secretsIssued()`. */
  resetStats(): void;
  /** Every SecretAccessKey and session Token served so far, for scanning output for leaks. */
  secretsIssued(): string[];
  /** Stops listening and destroys open connections, hung ones included. */
  close(): Promise<void>;
}

const TOKEN_PATH = "/latest/api/token";
const CREDENTIALS_PATH = "/latest/meta-data/iam/security-credentials/";
const EXTENDED_PATH = "/latest/meta-data/iam/security-credentials-extended/";
/** The ECS agent's relative URIs (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/credentials/<id>`). */
const ECS_PATH = "/v2/credentials/";
/** The EKS Pod Identity agent's path (`AWS_CONTAINER_CREDENTIALS_FULL_URI=http://169.254.170.23/v1/credentials`). */
const POD_IDENTITY_PATH = "/v1/credentials";
/** The largest STS request body read; real ones are well under 8 KiB (a session policy is at most 2 KiB packed). */
const MAX_STS_BODY = 64 * 1024;
/** The SSO portal's GetRoleCredentials (`AWS_ENDPOINT_URL_SSO` points the SDK's SSO client here). */
const SSO_PATH = "/federation/credentials";
const TOKEN_HEADER = "x-aws-ec2-metadata-token";
const TTL_HEADER = "x-aws-ec2-metadata-token-ttl-seconds";
const MAX_TTL_SECONDS = 21_600;
/** Bound on live session tokens; the oldest is dropped first (EC2 does not document a limit). */
const MAX_TOKENS = 100_000;

const DEFAULTS = {
  port: 0,
  host: "127.0.0.1",
  imdsv2Only: false,
  role: "credcache-demo-role",
  accountId: "123456789012",
  region: "us-east-1",
  instanceId: "i-0123456789abcdef0",
  lifetimeMs: 6 * 60 * 60_000,
  leadMs: 5 * 60_000,
  verbose: false,
  sts: {} as StsOptions,
  containerToken: undefined as string | undefined,
  ssoAccessToken: undefined as string | undefined,
};

function validateOptions(
  options: ImdsEmulatorOptions,
): typeof DEFAULTS & { clock: Clock; faults?: ImdsFaults } {
  const o = { ...DEFAULTS, clock: Date as Clock, ...definedOnly(options) };
  if (!(Number.isInteger(o.port) && o.port >= 0 && o.port <= 65_535)) {
    throw new RangeError("port must be an integer from 0 to 65535");
  }
  if (!/^[\w+=,.@-]{1,64}$/.test(o.role)) {
    throw new TypeError("role must be an IAM role name: 1-64 of letters, digits and +=,.@_-");
  }
  if (!/^\d{12}$/.test(o.accountId)) throw new TypeError("accountId must be 12 digits");
  if (!(Number.isFinite(o.lifetimeMs) && o.lifetimeMs >= 1000)) {
    throw new RangeError("lifetimeMs must be at least 1000 (credentials live whole seconds)");
  }
  if (!(Number.isFinite(o.leadMs) && o.leadMs >= 0 && o.leadMs < o.lifetimeMs)) {
    throw new RangeError("leadMs must be >= 0 and smaller than lifetimeMs");
  }
  if (typeof o.clock?.now !== "function") throw new TypeError("clock must have a now() method");
  return o;
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function emptyStats(): ImdsStats {
  return {
    requests: {
      total: 0,
      token: 0,
      role: 0,
      credentials: 0,
      extended: 0,
      sts: 0,
      container: 0,
      sso: 0,
      other: 0,
    },
    statuses: {},
    reads: { withToken: 0, withoutToken: 0 },
    tokensIssued: 0,
    credentialFetches: 0,
    credentialSets: 0,
    faultsInjected: 0,
    hangs: 0,
    resets: 0,
    sts: { assumeRole: 0, assumeRoleWithWebIdentity: 0, throttled: 0, refused: 0 },
    containerFetches: 0,
    ssoFetches: 0,
  };
}

function routeOf(method: string | undefined, path: string): ImdsRoute {
  if (method === "POST") return "sts";
  if (path.startsWith(ECS_PATH) || path === POD_IDENTITY_PATH) return "container";
  if (path === SSO_PATH) return "sso";
  if (path === TOKEN_PATH) return "token";
  if (path.startsWith(CREDENTIALS_PATH)) return path === CREDENTIALS_PATH ? "role" : "credentials";
  if (path.startsWith(EXTENDED_PATH)) return path === EXTENDED_PATH ? "role" : "extended";
  if (path === CREDENTIALS_PATH.slice(0, -1) || path === EXTENDED_PATH.slice(0, -1)) return "role";
  return "other";
}

const FAULT_ROUTE: Record<ImdsRoute, ImdsFaultRoute | undefined> = {
  token: "token",
  role: "role",
  credentials: "credentials",
  extended: "credentials",
  sts: "sts",
  container: "container",
  sso: undefined,
  other: undefined,
};

/**
 * Starts an EC2 Instance Metadata Service emulator that the AWS SDKs accept as the real thing
 * (IMDSv2 session tokens, IMDSv1 fallback, credential rotation), with fault injection.
 *
 * @example
 * ```ts
 * const imds = await startImdsEmulator({ imdsv2Only: true });
 * process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = imds.url;
 * const creds = await fromInstanceMetadata()();
 * imds.stats.credentialFetches; // 1
 * await imds.close();
 * ```
 */
export async function startImdsEmulator(options: ImdsEmulatorOptions = {}): Promise<ImdsEmulator> {
  const o = validateOptions(options);
  const { clock } = o;
  const rotation = new CredentialRotation(o.lifetimeMs, o.leadMs, clock);
  const faults = new FaultPlan(clock);
  faults.set(o.faults);
  const instanceProfileId = randomInstanceProfileId();
  /** token -> expiry (clock ms). Insertion order is roughly expiry order. */
  const tokens = new Map<string, number>();
  const secrets = new Set<string>();
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let stats = emptyStats();
  let setsServed = new Set<string>();
  let stsLog: StsCall[] = [];
  let containerToken = o.containerToken;
  /** Credentials per container path (each task id, the Pod Identity path) and per SSO account and role. */
  const routeRotations = new Map<string, CredentialRotation>();
  let closed: Promise<void> | undefined;

  const send = (req: IncomingMessage, res: ServerResponse, status: number, body: string, headers = {}) => {
    stats.statuses[status] = (stats.statuses[status] ?? 0) + 1;
    res.writeHead(status, {
      "content-type": "text/plain",
      "content-length": Buffer.byteLength(body),
      server: "EC2ws",
      ...headers,
    });
    res.end(req.method === "HEAD" ? undefined : body);
    if (o.verbose) process.stderr.write(`imds-emulator ${req.method} ${req.url} ${status}\n`);
  };

  const issueToken = (req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== "PUT") return send(req, res, 405, "Method Not Allowed", { allow: "PUT" });
    // EC2 refuses token requests that went through a proxy: a defence against SSRF.
    if (req.headers["x-forwarded-for"] !== undefined) return send(req, res, 403, "Forbidden");
    const raw = req.headers[TTL_HEADER];
    const ttl = typeof raw === "string" && /^\d+$/.test(raw.trim()) ? Number(raw) : Number.NaN;
    if (!(ttl >= 1 && ttl <= MAX_TTL_SECONDS)) return send(req, res, 400, "Bad Request");
    const now = clock.now();
    for (const [old, expiresAt] of tokens) {
      if (expiresAt > now && tokens.size < MAX_TOKENS) break;
      tokens.delete(old);
    }
    const token = randomBytes(42).toString("base64");
    tokens.set(token, now + ttl * 1000);
    stats.tokensIssued++;
    send(req, res, 200, token, { [TTL_HEADER]: String(ttl) });
  };

  const authorized = (req: IncomingMessage): boolean => {
    const token = req.headers[TOKEN_HEADER];
    if (token === undefined) return !o.imdsv2Only;
    const expiresAt = typeof token === "string" ? tokens.get(token) : undefined;
    return expiresAt !== undefined && clock.now() < expiresAt;
  };

  const serveCredentials = (
    req: IncomingMessage,
    res: ServerResponse,
    extended: boolean,
    fault: ImdsFault | undefined,
  ) => {
    const set: CredentialSet = rotation.current();
    if (fault?.malformed) return send(req, res, 200, malformedDocument(set));
    const body = credentialsDocument(set, {
      ...(extended && { accountId: o.accountId }),
      ...(fault?.expired && { expiresAt: clock.now() - 60_000 }),
    });
    stats.credentialFetches++;
    if (!setsServed.has(set.accessKeyId)) {
      setsServed.add(set.accessKeyId);
      stats.credentialSets = setsServed.size;
    }
    secrets.add(set.secretAccessKey);
    secrets.add(set.token);
    send(req, res, 200, body);
  };

  const answer = (
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    route: ImdsRoute,
    fault: ImdsFault | undefined,
  ) => {
    if (route === "token") return issueToken(req, res);
    if (route === "sts") return answerStsRequest(req, res, fault);
    if (route === "container") return serveContainer(req, res, path);
    if (route === "sso") return serveSso(req, res);
    if (req.method !== "GET" && req.method !== "HEAD") {
      return send(req, res, 405, "Method Not Allowed", { allow: "GET, HEAD" });
    }
    if (!authorized(req)) return send(req, res, 401, "Unauthorized");
    if (route === "role") return send(req, res, 200, o.role);
    if (route === "credentials" || route === "extended") {
      const name = path.slice((route === "extended" ? EXTENDED_PATH : CREDENTIALS_PATH).length);
      if (name !== o.role) return send(req, res, 404, "Not Found");
      return serveCredentials(req, res, route === "extended", fault);
    }
    const body = staticPath(path);
    if (body === undefined) return send(req, res, 404, "Not Found");
    send(req, res, 200, body);
  };

  const recordSts = (req: IncomingMessage, res: ServerResponse, answer: StsAnswer) => {
    stsLog.push(answer.call);
    if (answer.status === 200) {
      if (answer.call.action === "AssumeRole") stats.sts.assumeRole++;
      else stats.sts.assumeRoleWithWebIdentity++;
    } else if (answer.body.includes("<Code>Throttling</Code>")) stats.sts.throttled++;
    else stats.sts.refused++;
    for (const secret of answer.secrets) secrets.add(secret);
    send(req, res, answer.status, answer.body, { "content-type": "text/xml" });
  };

  const answerStsRequest = (req: IncomingMessage, res: ServerResponse, fault: ImdsFault | undefined) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_STS_BODY) chunks.push(chunk);
    });
    req.on("end", () => {
      if (closed) return;
      const params = new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
      if (size > MAX_STS_BODY) {
        return recordSts(
          req,
          res,
          stsError(413, "ValidationError", "Request too large", { action: "", status: 413 }),
        );
      }
      if (fault?.throttle) return recordSts(req, res, throttled(params));
      recordSts(req, res, answerSts(params, req.headers.authorization !== undefined, o.sts, clock.now()));
    });
  };

  const serveContainer = (req: IncomingMessage, res: ServerResponse, path: string) => {
    if (req.method !== "GET") return send(req, res, 405, "Method Not Allowed", { allow: "GET" });
    if (containerToken !== undefined && req.headers.authorization !== containerToken) {
      return send(
        req,
        res,
        401,
        JSON.stringify({ Code: "AccessDenied", Message: "Invalid authorization token" }),
        {
          "content-type": "application/json",
        },
      );
    }
    let containerRotation = routeRotations.get(path);
    if (!containerRotation) {
      containerRotation = new CredentialRotation(o.lifetimeMs, o.leadMs, clock);
      routeRotations.set(path, containerRotation);
    }
    const set = containerRotation.current();
    stats.containerFetches++;
    secrets.add(set.secretAccessKey);
    secrets.add(set.token);
    send(
      req,
      res,
      200,
      JSON.stringify({
        AccessKeyId: set.accessKeyId,
        SecretAccessKey: set.secretAccessKey,
        Token: set.token,
        Expiration: ec2Time(set.expiresAt),
        RoleArn: `arn:aws:iam::${o.accountId}:role/${o.role}`,
      }),
      { "content-type": "application/json" },
    );
  };

  const serveSso = (req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== "GET") return send(req, res, 405, "Method Not Allowed", { allow: "GET" });
    const query = new URLSearchParams((req.url ?? "").split("?")[1] ?? "");
    const bearer = req.headers["x-amz-sso_bearer_token"];
    const json = { "content-type": "application/json" };
    if (!bearer || (o.ssoAccessToken !== undefined && bearer !== o.ssoAccessToken)) {
      return send(req, res, 401, JSON.stringify({ message: "Session token not found or invalid" }), json);
    }
    const account = query.get("account_id") ?? "";
    const roleName = query.get("role_name") ?? "";
    let rotation = routeRotations.get(`sso:${account}:${roleName}`);
    if (!rotation) {
      rotation = new CredentialRotation(o.lifetimeMs, o.leadMs, clock);
      routeRotations.set(`sso:${account}:${roleName}`, rotation);
    }
    const set = rotation.current();
    stats.ssoFetches++;
    secrets.add(set.secretAccessKey);
    secrets.add(set.token);
    const roleCredentials = {
      accessKeyId: set.accessKeyId,
      secretAccessKey: set.secretAccessKey,
      sessionToken: set.token,
      expiration: set.expiresAt,
    };
    send(req, res, 200, JSON.stringify({ roleCredentials }), json);
  };

  const staticPath = (path: string): string | undefined => {
    switch (path) {
      case "/latest/meta-data/instance-id":
        return o.instanceId;
      case "/latest/meta-data/placement/region":
        return o.region;
      case "/latest/meta-data/iam/info":
        return JSON.stringify({
          Code: "Success",
          LastUpdated: ec2Time(rotation.current().issuedAt),
          InstanceProfileArn: `arn:aws:iam::${o.accountId}:instance-profile/${o.role}`,
          InstanceProfileId: instanceProfileId,
        });
      case "/latest/meta-data/iam/":
        return "info\nsecurity-credentials/";
      case "/latest/meta-data/placement/":
        return "region";
      case "/latest/meta-data/":
        return "iam/\ninstance-id\nplacement/";
      default:
        return undefined;
    }
  };

  const applyFault = (
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    route: ImdsRoute,
    f: ImdsFault,
  ) => {
    if (closed) return;
    if (f.reset) {
      stats.resets++;
      req.socket.resetAndDestroy();
      return;
    }
    if (f.hang) {
      stats.hangs++;
      return;
    }
    if (f.status !== undefined) return send(req, res, f.status, `Injected fault: ${f.status}`);
    answer(req, res, path, route, f);
  };

  const server = createServer((req, res) => {
    // Collapse repeated slashes: @aws-sdk/ec2-metadata-service prefixes the endpoint's "/" path.
    const path = (req.url ?? "/").split("?")[0]!.replace(/\/{2,}/g, "/");
    const route = routeOf(req.method, path);
    stats.requests.total++;
    stats.requests[route]++;
    if (req.method === "GET" || req.method === "HEAD") {
      if (req.headers[TOKEN_HEADER] === undefined) stats.reads.withoutToken++;
      else stats.reads.withToken++;
    }
    const fault = faults.pick(FAULT_ROUTE[route]);
    if (!fault) return answer(req, res, path, route, undefined);
    stats.faultsInjected++;
    if (!fault.latencyMs) return applyFault(req, res, path, route, fault);
    const timer = setTimeout(() => {
      timers.delete(timer);
      applyFault(req, res, path, route, fault);
    }, fault.latencyMs);
    timers.add(timer);
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port, o.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${o.host.includes(":") ? `[${o.host}]` : o.host}:${port}`;

  return {
    url,
    port,
    get stats() {
      return structuredClone(stats);
    },
    currentCredentials: () => summarize(rotation.current()),
    rotate: () => summarize(rotation.rotate()),
    setFaults: (next) => faults.set(next),
    stsCalls: () => structuredClone(stsLog),
    setContainerToken: (token) => {
      containerToken = token;
    },
    resetStats: () => {
      stats = emptyStats();
      setsServed = new Set();
      stsLog = [];
    },
    secretsIssued: () => [...secrets],
    close: () => {
      closed ??= new Promise<void>((resolve) => {
        for (const timer of timers) clearTimeout(timer);
        timers.clear();
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closed;
    },
  };
}
