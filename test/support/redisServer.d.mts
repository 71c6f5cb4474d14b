export interface RedisServer {
  port: number;
  /** Set when started with `tls`. */
  tlsPort: number | undefined;
  /** `redis://127.0.0.1:<port>` */
  url: string;
  pid: number | undefined;
  /** Kills the server; resolves once it has exited. */
  stop(): Promise<void>;
}

/** The redis-server on PATH, or undefined. */
export function redisServerOnPath(): string | undefined;

/** A port nothing listens on: bind an ephemeral one, then let it go. */
export function freePort(): Promise<number>;

/**
 * Starts redis-server (no persistence) on a free loopback port with extra `args`, and with
 * `tls` (PEM files) a TLS port too. Throws when redis-server is not on PATH or does not start.
 */
export function startRedisServer(
  args?: string[],
  tls?: { certFile: string; keyFile: string },
): Promise<RedisServer>;
