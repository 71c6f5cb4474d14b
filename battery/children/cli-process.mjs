// One `credcache process` run, as botocore or the AWS CLI would start it: the real CLI
// (packages/cli/dist/bin.cjs) in its own process. This wrapper keeps the credentials it prints
// off every log (the battery scans them for secrets) and tells the parent only their digest.
//
// argv[2]: JSON { cache: "file:///dir" | "sqlite:///path" | "redis://...?namespace=...", args?: string[] }
// -> { t: "cli", code, ms, creds?, warnings: string[] } (warnings: the CLI's stderr lines)

import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { outputOf } from "../../test/support/childOutput.mjs";
import { digest, send } from "./lib.mjs";

const config = JSON.parse(process.argv[2] ?? "{}");
const bin = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "packages", "cli", "dist", "bin.cjs");
const started = performance.now();
const proc = spawn(
  process.execPath,
  [bin, "process", "--source", "imds", "--cache", config.cache, ...(config.args ?? [])],
  { stdio: ["ignore", "pipe", "pipe"] },
);
// Bounded: the CLI waits at most its lock lease for a refresh.
outputOf(proc, { killAfterMs: 60_000 }).then(({ code, stdout, stderr }) => {
  let creds;
  try {
    const out = JSON.parse(stdout);
    creds = digest({
      accessKeyId: out.AccessKeyId,
      secretAccessKey: out.SecretAccessKey,
      sessionToken: out.SessionToken,
      expiration: out.Expiration ? new Date(out.Expiration) : undefined,
    });
  } catch {
    creds = undefined;
  }
  // stderr goes to our own stderr too, where the parent's secret scan reads it.
  process.stderr.write(stderr);
  send({
    t: "cli",
    code,
    ms: performance.now() - started,
    ...(creds && { creds }),
    warnings: stderr.split("\n").filter(Boolean),
  });
  process.exit(0);
});
