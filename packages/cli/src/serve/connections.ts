import { readFileSync } from "node:fs";
import type { Server } from "node:http";
import type { Socket } from "node:net";

/**
 * How many connections `credcache serve` keeps and for how long. Any local user can
 * connect without the token; these keep a flood of such connections from starving the
 * clients that have it (documented in docs/serve.md and SECURITY.md).
 */
export interface ConnectionLimits {
  /** Most connections open at once; a new one past it closes the oldest that has no request in flight. */
  maxConnections: number;
  /** A connection that has not sent a whole request head by then is closed. */
  headersTimeoutMs: number;
  /** How often Node checks that timeout (its default, 30 s, lets idle sockets live 40 s). */
  checkIntervalMs: number;
  /** No connection is kept longer than this: it is closed when its request in flight ends. */
  maxConnectionMs: number;
}

/** Descriptors kept free for the store, the sources and the process itself. */
const RESERVED_DESCRIPTORS = 100;
const MAX_CONNECTIONS = 4096;

/**
 * The limits for a process allowed `openFileLimit` descriptors. Past that limit the
 * kernel refuses `accept`, and libuv then accepts and drops whatever waits in the backlog,
 * legitimate clients included: the cap keeps every connection within it. A closed socket
 * frees its descriptor at once, so the cap can come close. It should stay above Node's
 * backlog (511): one turn of the event loop may accept that many, and a client accepted
 * early in such a burst must not become the oldest silent connection before its request
 * is read.
 */
export function connectionLimits(openFileLimit = readOpenFileLimit()): ConnectionLimits {
  return {
    maxConnections: Math.max(32, Math.min(MAX_CONNECTIONS, openFileLimit - RESERVED_DESCRIPTORS)),
    headersTimeoutMs: 3_000,
    checkIntervalMs: 500,
    maxConnectionMs: 60_000,
  };
}

/** The soft open-file limit (`ulimit -n`, systemd's LimitNOFILE=), from /proc; 1024 when unknown. */
export function readOpenFileLimit(): number {
  try {
    const line = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync("/proc/self/limits", "utf8"));
    if (line?.[1] === "unlimited") return Number.MAX_SAFE_INTEGER;
    if (line?.[1] !== undefined) return Number(line[1]);
  } catch {
    // Not Linux: assume the common default.
  }
  return 1024;
}

interface ConnectionState {
  requests: number;
  inFlight: number;
  /** Past `maxConnectionMs`: closed as soon as nothing is in flight. */
  expired: boolean;
}

/**
 * Applies the limits to a server: a cap on open connections that, when reached, closes
 * the oldest connection that never sent a request, else the oldest idle one, else
 * refuses the newcomer; a short head timeout checked often; a lifetime per connection.
 * A flood of silent connections then churns among itself while a client that sends its
 * request at once is served.
 */
export function limitConnections(server: Server, limits: ConnectionLimits): void {
  server.headersTimeout = limits.headersTimeoutMs;
  const open = new Map<Socket, ConnectionState>();

  const close = (socket: Socket) => {
    open.delete(socket);
    socket.destroy();
  };

  /** Makes room for one more: false when every connection has a request in flight. */
  const makeRoom = (): boolean => {
    let idle: Socket | undefined;
    // A Map iterates in insertion order: oldest first.
    for (const [socket, state] of open) {
      if (state.inFlight > 0) continue;
      if (state.requests === 0) {
        close(socket);
        return true;
      }
      idle ??= socket;
    }
    if (idle === undefined) return false;
    close(idle);
    return true;
  };

  server.on("connection", (socket: Socket) => {
    if (open.size >= limits.maxConnections && !makeRoom()) {
      socket.destroy();
      return;
    }
    const state: ConnectionState = { requests: 0, inFlight: 0, expired: false };
    open.set(socket, state);
    const lifetime = setTimeout(() => {
      state.expired = true;
      if (state.inFlight === 0) close(socket);
    }, limits.maxConnectionMs);
    lifetime.unref();
    socket.once("close", () => {
      clearTimeout(lifetime);
      open.delete(socket);
    });
  });

  server.on("request", (req, res) => {
    const state = open.get(req.socket);
    if (state === undefined) return;
    state.requests += 1;
    state.inFlight += 1;
    res.once("close", () => {
      state.inFlight -= 1;
      if (state.expired && state.inFlight === 0) close(req.socket);
    });
  });
}
