import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { networkInterfaces } from "node:os";
import { UsageError } from "../errors.js";
import { type ListenAddress, parseListen } from "./listen.js";

/** The address every SDK's ECS provider asks (`http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`). */
export const ECS_AGENT_HOST = "169.254.170.2";

/** Used with `--ecs-agent` when `--listen` is not given. */
export const DEFAULT_ECS_AGENT_LISTEN = `${ECS_AGENT_HOST}:80`;

/** The ECS agent's path shape: `/v2/credentials/<id>`. */
const PATH_PREFIX = "/v2/credentials/";

/** An id is 128 bits (32 hex characters), as unguessable as the ECS agent's UUID or more. */
const ID_HEX_CHARS = 32;

/**
 * `--listen` in ECS-agent mode: 169.254.170.2 (on `lo`, as the docs show), or a loopback
 * address that a DNAT rule sends 169.254.170.2:80 to.
 */
export function parseEcsAgentListen(text: string): ListenAddress {
  const match = /^169\.254\.170\.2:(\d{1,5})$/.exec(text);
  if (!match) return parseListen(text);
  const port = Number(match[1]);
  if (port > 65_535) throw new UsageError(`--listen ${text}: the port must be from 0 to 65535`);
  return { host: ECS_AGENT_HOST, port };
}

/**
 * 169.254.170.2 must be on loopback: on any other interface, the network next to it could
 * ask for credentials. (A loopback listen address needs no check.)
 */
export function checkEcsAgentAddress(address: ListenAddress): void {
  if (address.host !== ECS_AGENT_HOST) return;
  const text = `${ECS_AGENT_HOST}:${address.port}`;
  const holders = Object.entries(networkInterfaces()).filter(([, addresses]) =>
    (addresses ?? []).some((a) => a.address === ECS_AGENT_HOST),
  );
  if (holders.length === 0) {
    throw new UsageError(
      `--listen ${text}: ${ECS_AGENT_HOST} is on no interface; add it to loopback first (ip addr add ${ECS_AGENT_HOST}/32 dev lo), or listen on 127.0.0.1 behind a DNAT rule (see docs/serve.md)`,
    );
  }
  for (const [name, addresses] of holders) {
    if (!(addresses ?? []).every((a) => a.address !== ECS_AGENT_HOST || a.internal)) {
      throw new UsageError(
        `--listen ${text}: ${ECS_AGENT_HOST} is on ${JSON.stringify(name)}, not on loopback; anything on that network could ask for credentials`,
      );
    }
  }
}

/**
 * The capability id of one credential: HMAC-SHA256 of its name under the server's secret
 * (the token file), 128 bits as hex. Knowing one credential's id tells nothing about another's.
 */
export function ecsAgentId(secret: string, credential: string): string {
  return createHmac("sha256", secret)
    .update(`credcache ecs-agent id\0${credential}`)
    .digest("hex")
    .slice(0, ID_HEX_CHARS);
}

/** The value of `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` for one credential. */
export function ecsAgentRelativeUri(secret: string, credential: string): string {
  return `${PATH_PREFIX}${ecsAgentId(secret, credential)}`;
}

/** What the server needs to answer the ECS agent's protocol. */
export interface EcsAgentRoutes {
  /** `Host` values accepted besides the listen address's own (a DNAT rule keeps 169.254.170.2). */
  hosts: readonly string[];
  /** The credential a request path is the capability for, or `undefined` (a 404). */
  credentialFor(path: string): string | undefined;
}

/**
 * Maps `/v2/credentials/<id>` to credential names. Every known id is compared in constant
 * time, so response times say nothing about how close a guess was.
 */
export function ecsAgentRoutes(secret: string, credentials: Iterable<string>): EcsAgentRoutes {
  const digest = (value: string) => createHash("sha256").update(value, "latin1").digest();
  const known = [...credentials].map((name) => ({ name, digest: digest(ecsAgentRelativeUri(secret, name)) }));
  return {
    hosts: [ECS_AGENT_HOST, `${ECS_AGENT_HOST}:80`],
    credentialFor(path) {
      if (!path.startsWith(PATH_PREFIX)) return undefined;
      const asked = digest(path);
      let found: string | undefined;
      for (const { name, digest: expected } of known) {
        if (timingSafeEqual(asked, expected)) found = name;
      }
      return found;
    },
  };
}

/**
 * `--print-env NAME`: the line for a systemd `EnvironmentFile=` (or a PHP-FPM pool's
 * `env[...]`) that points every SDK at one credential.
 */
export function ecsAgentEnvironmentLine(secret: string, credential: string): string {
  return `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=${ecsAgentRelativeUri(secret, credential)}\n`;
}
