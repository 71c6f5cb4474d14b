#!/usr/bin/env node
import { parseArgs } from "node:util";
import { startImdsEmulator } from "./server.js";

const USAGE = `Usage: imds-emulator [options]

A local EC2 Instance Metadata Service (IMDSv2, IMDSv1 fallback, credential rotation). The same
port also answers STS (POST /: AssumeRole, AssumeRoleWithWebIdentity; any role), the container
endpoint (GET /v2/credentials/<id>, GET /v1/credentials) and the SSO portal
(GET /federation/credentials): point AWS_ENDPOINT_URL_STS, AWS_CONTAINER_CREDENTIALS_FULL_URI
or AWS_ENDPOINT_URL_SSO at it.

  --port <n>          port to listen on; 0 picks a free one (default 1338)
  --host <addr>       interface to listen on (default 127.0.0.1)
  --imdsv2-only       refuse GETs without a session token (HttpTokens: required)
  --lifetime <dur>    lifetime of each credential set, e.g. 6h, 90m, 30s (default 6h)
  --lead <dur>        serve the next set this long before expiry (default 5m)
  --role <name>       instance profile role name (default credcache-demo-role)
  --verbose           log one line per request to stderr
  --help              show this help

Prints the URL and an export line, then serves until SIGINT or SIGTERM.`;

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "6h", "5m", "30s", "250ms" -> milliseconds. */
function parseDuration(text: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim());
  if (!match)
    throw new Error(`${flag} takes a duration with a unit, e.g. 6h, 5m, 30s or 250ms (got "${text}")`);
  return Number(match[1]) * UNITS[match[2]!]!;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: "string", default: "1338" },
      host: { type: "string" },
      "imdsv2-only": { type: "boolean" },
      lifetime: { type: "string" },
      lead: { type: "string" },
      role: { type: "string" },
      verbose: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (!/^\d+$/.test(values.port)) throw new Error(`--port takes a number (got "${values.port}")`);
  const emulator = await startImdsEmulator({
    port: Number(values.port),
    host: values.host,
    imdsv2Only: values["imdsv2-only"],
    lifetimeMs: values.lifetime === undefined ? undefined : parseDuration(values.lifetime, "--lifetime"),
    leadMs: values.lead === undefined ? undefined : parseDuration(values.lead, "--lead"),
    role: values.role,
    verbose: values.verbose,
  });
  console.log(`imds-emulator listening on ${emulator.url}`);
  console.log(`export AWS_EC2_METADATA_SERVICE_ENDPOINT=${emulator.url}`);
  const stop = () => {
    emulator.close().then(() => process.exit(0));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

main().catch((error: unknown) => {
  console.error(`imds-emulator: ${error instanceof Error ? error.message : String(error)}`);
  console.error("Run imds-emulator --help for usage.");
  process.exit(2);
});
