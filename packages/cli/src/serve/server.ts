import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AwsCredentialIdentity, CachedCredentialProvider } from "@credcache/core";
import type { EcsAgentRoutes } from "./ecs-agent.js";
import { allowedHosts, type ListenAddress } from "./listen.js";
import type { ServeMetrics } from "./metrics.js";

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
}

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

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (proxied(req)) {
      metrics.refused("forwarded");
      return sendError(res, 403, "Forbidden", "proxied requests are refused");
    }
    if (!hosts.has((req.headers.host ?? "").toLowerCase())) {
      metrics.refused("host");
      return sendError(res, 403, "Forbidden", "unexpected Host header");
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      metrics.refused("method");
      res.setHeader("allow", "GET, HEAD");
      return sendError(res, 405, "MethodNotAllowed", "use GET");
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

  const server = createServer((req, res) => {
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
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;
  server.keepAliveTimeout = 5_000;
  server.maxHeadersCount = 100;
  return server;
}
