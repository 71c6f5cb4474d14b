import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import {
  CacheUnavailableError,
  type CredentialCache,
  PROCESS_DEFAULTS,
  REFRESH_DEFAULTS,
} from "@credcache/core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createRedisCache } from "../src/index.js";
import { RespClient } from "../src/respClient.js";
import { countedProvider } from "./fixtures/countedProvider.mjs";
import {
  deleteKeys,
  describeWithRedis,
  fakeRedis,
  freePort,
  type RawRedis,
  REDIS_URL,
  rawRedis,
  runFixture,
  startRedisServer,
} from "./redis.js";

const RUN = `cc-resp-test-${randomUUID().slice(0, 8)}`;
const TIMEOUTS = { connectTimeoutMs: 2_000, commandTimeoutMs: 5_000 };
/** Shaped like the secrets the project never lets into a message. */
const PASSWORD = "p@ss%w0rd/hunter2#x";
const ENCODED = encodeURIComponent(PASSWORD);

const stores: CredentialCache[] = [];
const clients: RespClient[] = [];

async function store(url: string, options: { commandTimeoutMs?: number; connectTimeoutMs?: number } = {}) {
  const created = await createRedisCache({ url, namespace: RUN, ...options });
  stores.push(created);
  return created;
}

function client(url = REDIS_URL): RespClient {
  const created = new RespClient(url, TIMEOUTS);
  clients.push(created);
  return created;
}

afterEach(async () => {
  await Promise.all([...stores.splice(0), ...clients.splice(0)].map((each) => each.close?.()));
});

async function failure(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => {
      throw new Error("expected a rejection");
    },
    (error: unknown) => error as Error,
  );
}

/** A fromCache provider on `cache` whose source is counted; its events are collected. */
function provider(cache: CredentialCache) {
  const { provider: resolve, ...counted } = countedProvider({
    cache,
    key: "k",
    credentials: () => ({
      accessKeyId: "ASIARESPTEST00000001",
      secretAccessKey: `resp-secret-${randomUUID()}`,
      sessionToken: `resp-token-${randomUUID()}`,
    }),
    cacheTimeoutMs: 10_000,
  });
  return { resolve, ...counted };
}

describeWithRedis("the built-in Redis client (real Redis)", () => {
  let raw: RawRedis;

  beforeAll(async () => {
    raw = await rawRedis();
  });

  afterAll(async () => {
    await deleteKeys(raw, `${RUN}*`);
    await raw.close();
  });

  it("pipelines commands and hands each caller its own reply, in order", async () => {
    const redis = client();
    const keys = Array.from({ length: 200 }, (_, i) => `${RUN}:pipe:${i}`);
    const sets = keys.map((key, i) => redis.send(["SET", key, `value-${i}-${"x".repeat(i * 50)}`]));
    const gets = keys.map((key) => redis.send(["GET", key]));
    expect(await Promise.all(sets)).toEqual(keys.map(() => "OK"));
    expect(await Promise.all(gets)).toEqual(keys.map((_, i) => `value-${i}-${"x".repeat(i * 50)}`));
    expect(await redis.send(["MGET", keys[3]!, `${RUN}:missing`])).toEqual([
      `value-3-${"x".repeat(150)}`,
      null,
    ]);
  });

  it("an error reply rejects that call only; the connection keeps serving the others", async () => {
    const redis = client();
    await redis.send(["SET", `${RUN}:text`, "not a number"]);
    const id = await redis.send(["CLIENT", "ID"]);
    const [before, incr, after] = await Promise.allSettled([
      redis.send(["PING"]),
      redis.send(["INCR", `${RUN}:text`]),
      redis.send(["PING"]),
    ]);
    expect(before).toEqual({ status: "fulfilled", value: "PONG" });
    expect(after).toEqual({ status: "fulfilled", value: "PONG" });
    expect(incr.status).toBe("rejected");
    const error = (incr as PromiseRejectedResult).reason as Error;
    expect(error).toBeInstanceOf(CacheUnavailableError);
    expect(error.message).toMatch(/answered INCR with an error: ERR value is not an integer/);
    expect(await redis.send(["CLIENT", "ID"]), "the same connection").toBe(id);
  });

  it("an error reply that quotes the command's arguments passes none of them on", async () => {
    const secret = `wJalrXUtnFEMI/K7MDENG/${randomUUID()}`;
    const error = await failure(client().send(["NOSUCHCOMMAND", secret, "x"]));
    expect(error.message).toMatch(/unknown command/);
    expect(error.message).not.toContain(secret);
    expect(error.message).not.toContain("wJalr");
  });

  it("SELECT: a database number in the URL is where the store reads and writes", async () => {
    const db5 = await store(`${REDIS_URL}/5`);
    await db5.set("selected", { db: 5 }, 60);
    expect(await db5.get("selected")).toEqual({ db: 5 });
    expect(await raw.exists(`${RUN}::{selected}`), "nothing in database 0").toBe(0);
    const other = await rawRedis();
    try {
      await other.select(5);
      expect(JSON.parse((await other.get(`${RUN}::{selected}`))!).value).toEqual({ db: 5 });
      await other.del(`${RUN}::{selected}`);
    } finally {
      other.destroy();
    }
  });

  it("a database Redis refuses fails every call, and no write lands in database 0", async () => {
    const db99 = await store(`${REDIS_URL}/99`);
    const error = await failure(db99.set("nowhere", 1, 60));
    expect(error).toBeInstanceOf(CacheUnavailableError);
    expect(error.message).toMatch(/refused to select database 99/);
    expect(await raw.exists(`${RUN}::{nowhere}`)).toBe(0);
  });
});

describeWithRedis("the built-in Redis client: AUTH (a private redis-server with a password)", () => {
  let server: Awaited<ReturnType<typeof startRedisServer>>;

  beforeAll(async () => {
    server = await startRedisServer(["--requirepass", PASSWORD]);
    // A named user too, with its own password, for AUTH user password.
    const admin = new RespClient(`redis://:${ENCODED}@127.0.0.1:${server.port}`, TIMEOUTS);
    await admin.send(["ACL", "SETUSER", "worker", "on", `>${PASSWORD}-worker`, "~*", "+@all"]);
    await admin.close();
  });

  afterAll(async () => {
    await server?.stop();
  });

  it("sends AUTH with the percent-decoded password (and user) from the URL", async () => {
    for (const url of [
      `redis://:${ENCODED}@127.0.0.1:${server.port}`,
      `redis://default:${ENCODED}@127.0.0.1:${server.port}`,
      `redis://worker:${encodeURIComponent(`${PASSWORD}-worker`)}@127.0.0.1:${server.port}/2`,
    ]) {
      const cache = await store(url);
      await cache.set("k", { url: "auth" }, 60);
      expect(await cache.get("k")).toEqual({ url: "auth" });
      const lock = await cache.acquireLock!("k", { ttlMs: 10_000 });
      expect(lock).toBeDefined();
      await lock!.release();
    }
  });

  it("a wrong or missing password fails the call, and no message or inspect output shows a password", async () => {
    const wrong = await store(`redis://default:wrong-${ENCODED}@127.0.0.1:${server.port}`);
    const refused = await failure(wrong.get("k"));
    expect(refused).toBeInstanceOf(CacheUnavailableError);
    expect(refused.message).toMatch(/refused the user name and password of the URL \(WRONGPASS\)/);
    const none = await store(`redis://127.0.0.1:${server.port}`);
    expect((await failure(none.get("k"))).message).toMatch(/NOAUTH/);
    const shown = [
      refused.message,
      inspect(refused, { depth: 5 }),
      inspect(wrong, { depth: 5, showHidden: true }),
    ];
    for (const text of shown) {
      expect(text).not.toContain(PASSWORD);
      expect(text).not.toContain(ENCODED);
      expect(text).not.toContain("w0rd");
    }
  });

  it("credentials still resolve from the source when AUTH fails", async () => {
    const { resolve, events, sourceCalls } = provider(await store(`redis://:nope@127.0.0.1:${server.port}`));
    expect((await resolve()).accessKeyId).toBe("ASIARESPTEST00000001");
    expect(sourceCalls()).toBe(1);
    expect(events.some((event) => event.type === "cache-error")).toBe(true);
    resolve.close();
  });
});

describe("the built-in Redis client: servers that fail", () => {
  it("Redis down (connection refused): the call fails with the address only; credentials come from the source", async () => {
    const port = await freePort();
    const cache = await store(`redis://user:${ENCODED}@127.0.0.1:${port}`);
    const error = await failure(cache.get("k"));
    expect(error).toBeInstanceOf(CacheUnavailableError);
    expect(error.message).toBe(`cannot reach Redis at 127.0.0.1:${port} (ECONNREFUSED)`);
    const { resolve, events, sourceCalls } = provider(cache);
    expect((await resolve()).accessKeyId).toBe("ASIARESPTEST00000001");
    expect(sourceCalls()).toBe(1);
    expect(JSON.stringify(events)).not.toContain("w0rd");
    resolve.close();
  });

  it("an error reply that echoes the password, decoded or percent-encoded, shows neither form (issue 19)", async () => {
    const echo = await fakeRedis((socket, chunk) => {
      socket.write(
        chunk.includes("AUTH")
          ? "+OK\r\n"
          : `-ERR no such key for ${PASSWORD}, ${ENCODED}, ${encodeURIComponent(PASSWORD).toLowerCase()}\r\n`,
      );
    });
    try {
      // Written the way a user may: lower-case escapes.
      const written = PASSWORD.replace("@", "%40")
        .replace("%w", "%25w")
        .replace("/", "%2f")
        .replace("#", "%23");
      for (const url of [
        `redis://:${ENCODED}@127.0.0.1:${echo.port}`,
        `redis://:${written}@127.0.0.1:${echo.port}`,
      ]) {
        const error = await failure((await store(url)).get("k"));
        expect(error).toBeInstanceOf(CacheUnavailableError);
        expect(error.message).not.toContain(PASSWORD);
        expect(error.message).not.toContain(ENCODED);
        expect(error.message).not.toContain(written);
        expect(error.message).not.toContain("hunter2");
      }
    } finally {
      await echo.close();
    }
  });

  it("the default command timeout is not shorter than the CLI's cacheTimeoutMs (issue 22)", async () => {
    const silent = await fakeRedis(() => {});
    try {
      const cache = await createRedisCache({ url: `redis://127.0.0.1:${silent.port}`, namespace: RUN });
      stores.push(cache);
      const error = await failure(cache.get("k"));
      const waited = Number(/within (\d+) ms/.exec(error.message)?.[1]);
      expect(waited).toBeGreaterThanOrEqual(PROCESS_DEFAULTS.cacheTimeoutMs);
      expect(waited).toBeGreaterThanOrEqual(REFRESH_DEFAULTS.cacheTimeoutMs);
    } finally {
      await silent.close();
    }
  });

  it("a server that accepts but never answers: the call fails after commandTimeoutMs, the resolution still succeeds", async () => {
    const silent = await fakeRedis(() => {});
    try {
      const cache = await store(`redis://127.0.0.1:${silent.port}`, { commandTimeoutMs: 300 });
      const error = await failure(cache.get("k"));
      expect(error).toBeInstanceOf(CacheUnavailableError);
      expect(error.message).toMatch(/did not answer GET within 300 ms/);
      const { resolve, sourceCalls } = provider(cache);
      expect((await resolve()).accessKeyId).toBe("ASIARESPTEST00000001");
      expect(sourceCalls()).toBe(1);
      resolve.close();
    } finally {
      await silent.close();
    }
  });

  it("a server that never answers the handshake: the call fails after connectTimeoutMs", async () => {
    const silent = await fakeRedis(() => {});
    try {
      const cache = await store(`redis://:${ENCODED}@127.0.0.1:${silent.port}/3`, {
        connectTimeoutMs: 300,
        commandTimeoutMs: 60_000,
      });
      const error = await failure(cache.get("k"));
      expect(error.message).toMatch(/did not accept the connection within 300 ms/);
      expect(error.message).not.toContain("w0rd");
    } finally {
      await silent.close();
    }
  });

  it("a server that closes mid-reply: the waiting calls fail, and the next call opens a new connection", async () => {
    const value = JSON.stringify({ value: { half: "x".repeat(100) } });
    const flaky = await fakeRedis((socket, _chunk, connection) => {
      if (connection === 1) {
        // Half of a bulk string, then gone.
        socket.write(`$${value.length}\r\n${value.slice(0, 40)}`);
        setTimeout(() => socket.destroy(), 20);
      } else {
        socket.write(`$${value.length}\r\n${value}\r\n`);
      }
    });
    try {
      const cache = await store(`redis://127.0.0.1:${flaky.port}`);
      const error = await failure(cache.get("k"));
      expect(error).toBeInstanceOf(CacheUnavailableError);
      expect(error.message).toMatch(/closed the connection before answering/);
      expect(await cache.get("k")).toEqual({ half: "x".repeat(100) });
      expect(flaky.connections()).toBe(2);
    } finally {
      await flaky.close();
    }
  });

  it("a server that does not speak RESP: the call fails, the connection is dropped", async () => {
    const http = await fakeRedis((socket) => socket.write("HTTP/1.1 400 Bad Request\r\n\r\n"));
    try {
      const error = await failure((await store(`redis://127.0.0.1:${http.port}`)).get("k"));
      expect(error).toBeInstanceOf(CacheUnavailableError);
      expect(error.message).toMatch(/broke the protocol/);
    } finally {
      await http.close();
    }
  });
});

describeWithRedis(
  "the built-in Redis client: rediss:// (a private redis-server with a self-signed certificate)",
  () => {
    let dir: string;
    let server: Awaited<ReturnType<typeof startRedisServer>>;

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), "credcache-redis-tls-"));
      const certFile = join(dir, "cert.pem");
      const keyFile = join(dir, "key.pem");
      execFileSync(
        "openssl",
        [
          "req",
          "-x509",
          "-newkey",
          "rsa:2048",
          "-nodes",
          "-keyout",
          keyFile,
          "-out",
          certFile,
          "-days",
          "2",
        ].concat(["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]),
        { stdio: "ignore" },
      );
      server = await startRedisServer([], { certFile, keyFile });
    });

    afterAll(async () => {
      await server?.stop();
      await rm(dir, { recursive: true, force: true });
    });

    it("checks the server's certificate: one no trusted CA signed is refused", async () => {
      const error = await failure((await store(`rediss://:${ENCODED}@localhost:${server.tlsPort}`)).get("k"));
      expect(error).toBeInstanceOf(CacheUnavailableError);
      expect(error.message).toMatch(/^cannot reach Redis at localhost:\d+ \(\w*SELF_SIGNED\w*\)$/);
    });

    it("reads over TLS once the certificate is trusted (NODE_EXTRA_CA_CERTS, in a new process)", async () => {
      const plain = await store(`redis://127.0.0.1:${server.port}`);
      await plain.set("k", { over: "tls" }, 60);
      const result = await runFixture(["short-lived.mjs", `rediss://localhost:${server.tlsPort}`, RUN, "k"], {
        NODE_EXTRA_CA_CERTS: join(dir, "cert.pem"),
      });
      expect(result).toMatchObject({ code: 0, stdout: JSON.stringify({ value: { over: "tls" } }) });
    });
  },
);
