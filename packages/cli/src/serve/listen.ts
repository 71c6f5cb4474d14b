import { isIPv4 } from "node:net";
import { UsageError } from "../errors.js";

/** Where `credcache serve` listens. */
export interface ListenAddress {
  /** An IP literal: `127.x.y.z` or `::1`. */
  host: string;
  /** 0 picks a free port (tests, benchmarks). */
  port: number;
}

/** Used when `--listen` is not given. */
export const DEFAULT_LISTEN = "127.0.0.1:9911";

/**
 * Parses `--listen HOST:PORT`. Only loopback IP literals are accepted: a name could
 * resolve anywhere, and any other interface would hand credentials to the network.
 */
export function parseListen(text: string): ListenAddress {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (!match) {
    throw new UsageError(`--listen ${text}: expected HOST:PORT, e.g. 127.0.0.1:9911 or [::1]:9911`);
  }
  const host = match[1] ?? match[2]!;
  const port = Number(match[3]);
  if (port > 65_535) throw new UsageError(`--listen ${text}: the port must be from 0 to 65535`);
  const loopback = host === "::1" || (isIPv4(host) && host.startsWith("127."));
  if (!loopback) {
    throw new UsageError(
      `--listen ${text}: credcache serve listens on loopback only (127.0.0.0/8 or [::1]), so that nothing off this host can ask for credentials`,
    );
  }
  return { host, port };
}

/** The URL clients use, for logs and docs. */
export function baseUrl({ host, port }: ListenAddress): string {
  return `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/**
 * `Host` header values a legitimate local client sends. Anything else is a request that
 * a browser was tricked into (DNS rebinding) or that a local proxy relayed.
 */
export function allowedHosts(address: ListenAddress): Set<string> {
  const names = [address.host.includes(":") ? `[${address.host}]` : address.host];
  // The SDK's fromContainerMetadata accepts only "localhost" and "127.0.0.1".
  if (address.host === "127.0.0.1" || address.host === "::1") names.push("localhost");
  const hosts = new Set(names.map((name) => `${name}:${address.port}`));
  if (address.port === 80) for (const name of names) hosts.add(name);
  return hosts;
}
