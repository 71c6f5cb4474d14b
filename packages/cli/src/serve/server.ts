import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AwsCredentialIdentity, CachedCredentialProvider } from "@credcache/core";
import { type ConnectionLimits, connectionLimits, limitConnections } from "./connections.js";
import type { EcsAgentRoutes } from "./ecs-agent.js";
import { allowedHosts, type ListenAddress } from "./listen.js";
import type { RefusalReason, ServeMetrics } from "./metrics.js";

export interface CredentialServerOptions {
  address: ListenAddress;
  /** Credential providers by the name in `/creds/NAME`; aliases map to the same provider. */
  routes: ReadonlyMap<string, { canonical: string; provider: CachedCredentialProvider }>;
  /** Constant-time check of the `Authorization` header. */
  checkToken: (header: string | undefined) => boolean;
  /**
   * ECS-agent mode: credentials at `/v2/credentials/<id>` with no token (the path is the
   * capability) instead of `/creds/NAME`; every other path is a 404, counted.
   */
  ecsAgent?: EcsAgentRoutes;
  metrics: ServeMetrics;
  /** Called with every set handed out (to mask its secrets in logs). */
  onServed?: (identity: AwsCredentialIdentity) => void;
  /** One line per resolution failure; the line holds no secret. */
  onResolveError: (credential: string, error: unknown) => void;
  /** @default connectionLimits() for this process's open-file limit */
  limits?: ConnectionLimits;
}

/**
 * Node keeps only the first this-many headers of a request and drops the rest unseen: a
 * request that reaches it is refused, since a proxy header could hide past it.
 */
const MAX_HEADERS = 100;

/** Headers a proxy adds: a request that passed through one is not from a local SDK. */
const PROXY_HEADERS = ["forwarded", "via", "x-real-ip"];

/**
 * The container-credentials document every AWS SDK reads (the ECS / EKS Pod Identity
 * format). Long-term keys (a profile without a role) have no `Token` or `Expiration`;
 * they are sent without them, and SDKs that require both refuse them.
 */
export function containerCredentialsJson(identity: AwsCredentialIdentity): string {
  const { accountId } = identity as { accountId?: string };
  return JSON.stringify({
    AccessKeyId: identity.accessKeyId,
    SecretAccessKey: identity.secretAccessKey,
    ...(identity.sessionToken && { Token: identity.sessionToken }),
    ...(identity.expiration && { Expiration: identity.expiration.toISOString() }),
    ...(accountId && { AccountId: accountId }),
  });
}

function send(res: ServerResponse, status: number, body: string, type = "application/json"): void {
  res.writeHead(status, {
    "content-type": type,
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
  });
  res.end(body);
}

/** Error bodies in the `{Code, Message}` shape the SDKs parse; they never say more. */
function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  send(res, status, JSON.stringify({ Code: code, Message: message }));
}

/** Why a request is refused before its path is looked at (never served, whatever its token). */
interface Refusal {
  reason: RefusalReason;
  status: number;
  code: string;
  message: string;
  /** Extra response headers (`allow` for 405). */
  headers?: Record<string, string>;
}

function proxied(req: IncomingMessage): boolean {
  for (const name of Object.keys(req.headers)) {
    if (name.startsWith("x-forwarded-") || PROXY_HEADERS.includes(name)) return true;
  }
  return false;
}

/**
 * A `node:http` server that answers `GET /creds/NAME` with container credentials,
 * `GET /healthz` and `GET /metrics`. Not yet listening.
 */
export function createCredentialServer(options: CredentialServerOptions): Server {
  const { routes, checkToken, metrics } = options;
  // Port 0 means "any free port": the Host check needs the one actually bound.
  let hosts = new Set<string>();

  const health = (): { ok: boolean; body: string } => {
    const credentials: Record<string, { secondsToExpiry: number | null }> = {};
    let ok = true;
    for (const { canonical } of routes.values()) {
      const left = metrics.secondsLeft(canonical);
      if (left === undefined || left <= 0) ok = false;
      credentials[canonical] = {
        secondsToExpiry: left === undefined || !Number.isFinite(left) ? null : left,
      };
    }
    return { ok, body: JSON.stringify({ status: ok ? "ok" : "unavailable", credentials }) };
  };

  /** The one gate every request passes before routing: what it is, not who sent it. */
  const refusalOf = (req: IncomingMessage): Refusal | undefined => {
    if (req.rawHeaders.length / 2 >= MAX_HEADERS) {
      return {
        reason: "headers",
        status: 431,
        code: "RequestHeaderFieldsTooLarge",
        message: "too many headers",
      };
    }
    if (proxied(req)) {
      return { reason: "forwarded", status: 403, code: "Forbidden", message: "proxied requests are refused" };
    }
    if (!hosts.has((req.headers.host ?? "").toLowerCase())) {
      return { reason: "host", status: 403, code: "Forbidden", message: "unexpected Host header" };
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      return {
        reason: "method",
        status: 405,
        code: "MethodNotAllowed",
        message: "use GET",
        headers: { allow: "GET, HEAD" },
      };
    }
    return undefined;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const refusal = refusalOf(req);
    if (refusal) {
      metrics.refused(refusal.reason);
      for (const [name, value] of Object.entries(refusal.headers ?? {})) res.setHeader(name, value);
      // A refused client gets no keep-alive: its connection is not worth a descriptor.
      res.shouldKeepAlive = false;
      return sendError(res, refusal.status, refusal.code, refusal.message);
    }
    const path = (req.url ?? "/").split("?")[0]!;
    if (path === "/healthz") {
      const { ok, body } = health();
      return send(res, ok ? 200 : 503, body);
    }
    if (path === "/metrics") return send(res, 200, metrics.render(), "text/plain; version=0.0.4");
    if (options.ecsAgent) {
      const name = options.ecsAgent.credentialFor(path);
      if (name === undefined) {
        metrics.response("unknown", 404);
        return sendError(res, 404, "NotFound", "no such path");
      }
      return answer(res, name, routes.get(name)!);
    }
    if (!path.startsWith("/creds/")) return sendError(res, 404, "NotFound", "no such path");
    // The token comes before the name: without it, nobody learns which names exist.
    if (!checkToken(req.headers.authorization)) {
      metrics.unauthorized += 1;
      return sendError(res, 401, "Unauthorized", "unauthorized");
    }
    const name = path.slice("/creds/".length);
    const route = routes.get(name);
    if (!route) {
      metrics.response("unknown", 404);
      return sendError(res, 404, "NotFound", "no such credential");
    }
    return answer(res, name, route);
  };

  const answer = async (
    res: ServerResponse,
    name: string,
    route: { canonical: string; provider: CachedCredentialProvider },
  ): Promise<void> => {
    let identity: AwsCredentialIdentity;
    try {
      identity = await route.provider();
    } catch (error) {
      options.onResolveError(route.canonical, error);
      metrics.response(name, 503);
      return sendError(res, 503, "CredentialsUnavailable", "credentials are unavailable; see the server log");
    }
    options.onServed?.(identity);
    metrics.expiresAt(route.canonical, identity.expiration?.getTime());
    metrics.response(name, 200);
    send(res, 200, containerCredentialsJson(identity));
  };

  const limits = options.limits ?? connectionLimits();
  const server = createServer({ connectionsCheckingInterval: limits.checkIntervalMs }, (req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) sendError(res, 500, "InternalError", "internal error");
      else res.destroy();
    });
  });
  server.on("listening", () => {
    const { port } = server.address() as { port: number };
    hosts = allowedHosts({ ...options.address, port });
    for (const host of options.ecsAgent?.hosts ?? []) hosts.add(host);
  });
  // Local clients send a small request at once; a slow one is holding a socket for nothing.
  limitConnections(server, limits);
  server.requestTimeout = 15_000;
  server.keepAliveTimeout = 5_000;
  server.maxHeadersCount = MAX_HEADERS;
  // From Node 22 on, the parser itself refuses a request with more headers than
  // maxHeadersCount (HPE_HEADER_OVERFLOW) before any handler sees it: the same 431, counted.
  server.on("clientError", (error: NodeJS.ErrnoException, socket) => {
    const tooMany = error.code === "HPE_HEADER_OVERFLOW";
    if (tooMany) metrics.refused("headers");
    // As Node's own handler does: the answer written at once, then the socket gone.
    if (socket.writable) {
      socket.write(
        tooMany
          ? "HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
          : "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
      );
    }
    socket.destroy();
  });
  return server;
}
