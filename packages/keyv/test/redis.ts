import { spawn } from "node:child_process";
import { type AddressInfo, connect, createServer, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import type { CredentialCache } from "@credcache/core";
import { createClient } from "@keyv/redis";
import { afterAll, afterEach, beforeAll, expect } from "vitest";
import { describeWithRedis, TEST_REDIS_URL } from "../../../test/support/redis.mjs";
import { freePort, startRedisServer } from "../../../test/support/redisServer.mjs";

/** The test run's private redis-server (test/support/redisGlobalSetup.mjs); tests using it run inside describeWithRedis. */
export const REDIS_URL = TEST_REDIS_URL ?? "redis://test-redis-not-started.invalid";
export const redisUp = TEST_REDIS_URL !== undefined;
const REDIS_PORT = Number(new URL(REDIS_URL).port);

export { describeWithRedis, freePort, startRedisServer };

function newClient() {
  return createClient({ url: REDIS_URL, socket: { connectTimeout: 1_000, reconnectStrategy: false } });
}

export type RawRedis = ReturnType<typeof newClient>;

/** A plain node-redis client on the test Redis, for looking at what the store wrote. */
export async function rawRedis(): Promise<RawRedis> {
  const client = newClient();
  client.on("error", () => {});
  await client.connect();
  return client;
}

/**
 * The set-up of a file of tests on the test Redis: `raw`, a plain client for looking at
 * what stores wrote; `stores`, closed after each test; this run's values and locks
 * (`<run>*`, `credcache:lock:<run>*`) deleted at the end. Call inside a describe.
 */
export function useTestRedis(run: string): { raw: RawRedis; stores: CredentialCache[] } {
  const state = { raw: undefined as unknown as RawRedis, stores: [] as CredentialCache[] };
  beforeAll(async () => {
    state.raw = await rawRedis();
  });
  afterEach(async () => {
    await Promise.all(state.stores.splice(0).map((store) => store.close?.()));
  });
  afterAll(async () => {
    await deleteKeys(state.raw, `${run}*`);
    await deleteKeys(state.raw, `credcache:lock:${run}*`);
    await state.raw.close();
  });
  return state;
}

/** Deletes every key matching `pattern` (SCAN, not KEYS, so a shared Redis is not blocked). */
export async function deleteKeys(client: RawRedis, pattern: string): Promise<void> {
  for await (const keys of client.scanIterator({ MATCH: pattern, COUNT: 500 })) {
    if (keys.length > 0) await client.del(keys);
  }
}

/**
 * A TCP proxy in front of the test Redis that can be switched off (open connections
 * cut, new ones refused) and on again: a Redis outage without touching the real
 * server or anyone else's connections to it.
 */
export async function redisProxy() {
  const open = new Set<Socket>();
  let accepted = 0;
  let isUp = true;
  const server = createServer((socket) => {
    if (!isUp) {
      socket.destroy();
      return;
    }
    accepted += 1;
    const upstream = connect(REDIS_PORT, "127.0.0.1");
    for (const [from, to] of [
      [socket, upstream],
      [upstream, socket],
    ] as const) {
      open.add(from);
      from.pipe(to);
      from.on("error", () => to.destroy());
      from.on("close", () => {
        open.delete(from);
        to.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    /** Connections accepted while up. */
    connections: () => accepted,
    down() {
      isUp = false;
      for (const socket of open) socket.destroy();
    },
    up() {
      isUp = true;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * A TCP server that plays Redis badly: `onData` gets every chunk a client sends, with its
 * socket, and answers (or not) as the test wants.
 */
export async function fakeRedis(onData: (socket: Socket, chunk: Buffer, connection: number) => void) {
  const open = new Set<Socket>();
  let connections = 0;
  const server = createServer((socket) => {
    const connection = ++connections;
    open.add(socket);
    socket.on("close", () => open.delete(socket));
    socket.on("error", () => {});
    socket.on("data", (chunk) => onData(socket, chunk, connection));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * Runs a script of test/fixtures with plain node (on the BUILT package); resolves with its
 * exit code and output, or code "hung" when it has not exited after 20 s (generous: the
 * checks are that it ends by itself, never how fast).
 */
export function runFixture(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null | "hung"; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, {
      cwd: fileURLToPath(new URL("./fixtures/", import.meta.url)),
      env: { ...process.env, ...env },
      stdio: "pipe",
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    const cap = setTimeout(() => {
      child.kill("SIGKILL");
      resolve({ code: "hung", stdout, stderr });
    }, 20_000);
    child.on("exit", (code) => {
      clearTimeout(cap);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Asserts that two stores over one Redis use one lock key for `key`: while `first` holds
 * the lock `second` is refused, and once it is released `second` gets it.
 */
export async function expectOneLockKey(
  first: CredentialCache,
  second: CredentialCache,
  key: string,
): Promise<void> {
  const held = await first.acquireLock!(key, { ttlMs: 10_000 });
  expect(held).toBeDefined();
  expect(await second.acquireLock!(key, { ttlMs: 10_000 }), "one lock key for both").toBeUndefined();
  await held!.release();
  const mine = await second.acquireLock!(key, { ttlMs: 10_000 });
  expect(mine).toBeDefined();
  await mine!.release();
}
