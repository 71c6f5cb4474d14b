#!/usr/bin/env node
import { main } from "./main.js";

function exit(code: number): void {
  process.exitCode = code;
  // Exit as soon as the output is flushed: a keep-alive socket or a store's timer must not
  // keep the calling SDK waiting for this process to end.
  process.stdout.write("", () => process.stderr.write("", () => process.exit(code)));
}

main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env }).then(
  exit,
  (error: unknown) => {
    // main() reports its own errors; this is a bug in credcache, so no message (it could hold anything).
    process.stderr.write(`credcache: internal error (${(error as Error)?.name ?? "unknown"})\n`);
    exit(1);
  },
);
