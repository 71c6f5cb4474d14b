import { spawnSync } from "node:child_process";

/**
 * Redis is required in CI (the tests fail there without it); on a laptop without it the
 * Redis cases skip with a message saying how to start one.
 */
export function redisAvailable(): boolean {
  const probe = spawnSync(
    process.execPath,
    [
      "-e",
      `const s=require("node:net").connect(6379,"127.0.0.1");s.on("connect",()=>process.exit(0));s.on("error",()=>process.exit(1));setTimeout(()=>process.exit(1),1000)`,
    ],
    { timeout: 3_000 },
  );
  if (probe.status === 0) return true;
  if (process.env.CI) throw new Error("Redis is not reachable on 127.0.0.1:6379 (CI must start it)");
  console.warn(
    "Redis is not running on 127.0.0.1:6379: skipping the Redis cases (redis-server --daemonize yes)",
  );
  return false;
}
