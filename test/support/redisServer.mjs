// A private redis-server for tests and benches: started on a free loopback port, with no
// persistence, and killed by the caller (or when this process exits). Nothing here
// depends on a Redis someone else started, on 6379 or anywhere.
import { spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { createServer } from "node:net";
import { delimiter, join } from "node:path";

/** The redis-server on PATH, or undefined: what a user's shell would run. */
export function redisServerOnPath() {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, "redis-server");
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return undefined;
}

/** A port nothing listens on: bind an ephemeral one, then let it go. */
export async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(() => resolve()));
  return port;
}

const running = new Set();
process.once("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/**
 * Starts redis-server (no persistence) on a free loopback port with extra `args` (such as
 * `["--requirepass", pw]`), and with `tls` (PEM files) a TLS port too; resolves once it
 * accepts connections. Throws when redis-server is not on PATH or does not start.
 */
export async function startRedisServer(args = [], tls) {
  const binary = redisServerOnPath();
  if (!binary) throw new Error("redis-server is not on PATH (install it to run the Redis tests)");
  const port = await freePort();
  const tlsPort = tls ? await freePort() : undefined;
  const tlsArgs = tls
    ? ["--tls-port", String(tlsPort), "--tls-cert-file", tls.certFile, "--tls-key-file", tls.keyFile]
    : [];
  // Client certificates are not asked for; a CA file is required all the same.
  if (tls) tlsArgs.push("--tls-ca-cert-file", tls.certFile, "--tls-auth-clients", "no");
  const child = spawn(
    binary,
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", ...tlsArgs, ...args],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  running.add(child);
  child.on("exit", () => running.delete(child));
  let output = "";
  await new Promise((resolve, reject) => {
    const onOutput = (chunk) => {
      output += chunk.toString();
      if (output.includes("Ready to accept connections")) resolve();
    };
    child.stdout.on("data", onOutput);
    child.stderr.on("data", onOutput);
    child.on("error", reject);
    child.on("exit", (code) => reject(new Error(`redis-server exited (${code}): ${output.slice(-500)}`)));
  });
  // Redis logs every client that connects; nobody reads it once the server is up.
  child.stdout.resume();
  child.stderr.resume();
  return {
    port,
    tlsPort,
    url: `redis://127.0.0.1:${port}`,
    pid: child.pid,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.on("exit", () => resolve());
        child.kill("SIGKILL");
      }),
  };
}
