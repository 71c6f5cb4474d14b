import { inspect } from "node:util";
import type { AwsCredentialIdentity } from "@smithy/types";
import { type TestClock, testClock } from "../../../test/support/testClock.mjs";
import type { CacheEvent, CacheLock, CredentialCache, FromCacheInit, Logger } from "../src/index.js";
import { expiresAtFromTtl, fromCache } from "../src/index.js";

/**
 * Everything the core tests log, emit or inspect is recorded here; `secrets.test.ts`
 * style checks in `afterAll` (see setup.ts) assert no fixture secret ever appears.
 */
export const captured: string[] = [];
export const issuedSecrets = new Set<string>();

export function capture(text: string): void {
  captured.push(text);
}

export { type TestClock, testClock };

let serial = 0;

/** A source that counts its calls and returns new credentials each time. */
export function scriptedSource(clock: { now(): number }, lifetimeMs = 60 * 60_000) {
  const state = {
    calls: 0,
    fail: undefined as undefined | (() => Error),
    /** Absolute expiry override for the next answers. */
    expiration: undefined as undefined | number | null,
    delayMs: 0,
    lastProperties: undefined as undefined | Record<string, unknown>,
  };
  const provider = async (properties?: Record<string, unknown>): Promise<AwsCredentialIdentity> => {
    state.calls += 1;
    state.lastProperties = properties;
    if (state.delayMs) await new Promise((r) => setTimeout(r, state.delayMs));
    if (state.fail) throw state.fail();
    serial += 1;
    const secretAccessKey = `SECRETFIXTURE${serial}x${Math.random().toString(36).slice(2, 12)}`;
    const sessionToken = `TOKENFIXTURE${serial}x${Math.random().toString(36).slice(2, 22)}`;
    issuedSecrets.add(secretAccessKey);
    issuedSecrets.add(sessionToken);
    const expiration = state.expiration === undefined ? clock.now() + lifetimeMs : state.expiration;
    return {
      accessKeyId: `ASIATEST${String(serial).padStart(8, "0")}`,
      secretAccessKey,
      sessionToken,
      ...(expiration !== null && { expiration: new Date(expiration) }),
    };
  };
  return { provider, state };
}

/** Records log lines and events, and checks they carry no secret. */
export function recorder() {
  const lines: Array<{ level: string; text: string }> = [];
  const events: CacheEvent[] = [];
  const log =
    (level: string) =>
    (...args: unknown[]) => {
      const text = args.map((a) => (typeof a === "string" ? a : inspect(a))).join(" ");
      lines.push({ level, text });
      capture(text);
    };
  const logger: Logger = { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") };
  const onEvent = (event: CacheEvent) => {
    events.push(event);
    capture(JSON.stringify(event));
    capture(inspect(event, { depth: 5 }));
  };
  return {
    logger,
    onEvent,
    lines,
    events,
    of: <T extends CacheEvent["type"]>(type: T) =>
      events.filter((e): e is Extract<CacheEvent, { type: T }> => e.type === type),
  };
}

/** An in-memory store whose every behaviour the test can script, with a lease lock. */
export function scriptedStore(clock: { now(): number }) {
  const data = new Map<string, { value: string; expiresAt?: number }>();
  const locks = new Map<string, { token: number; expiresAt: number }>();
  let tokens = 0;
  const state = {
    gets: 0,
    sets: 0,
    removes: 0,
    locksTaken: 0,
    mode: "ok" as "ok" | "throw" | "hang" | "garbage",
    garbage: "{not json" as unknown,
    lockMode: "ok" as "ok" | "busy",
  };
  const hang = () => new Promise<never>(() => {});
  const guard = () => {
    if (state.mode === "throw") throw new Error("store is broken");
    if (state.mode === "hang") return hang();
    return undefined;
  };
  const store: CredentialCache & { data: typeof data; locks: typeof locks } = {
    data,
    locks,
    async get(key) {
      state.gets += 1;
      await guard();
      if (state.mode === "garbage") return state.garbage;
      const entry = data.get(key);
      if (!entry) return undefined;
      if (entry.expiresAt !== undefined && entry.expiresAt <= clock.now()) {
        data.delete(key);
        return undefined;
      }
      return JSON.parse(entry.value);
    },
    async set(key, value, ttlSeconds) {
      state.sets += 1;
      await guard();
      const expiresAt = expiresAtFromTtl(ttlSeconds, clock.now());
      data.set(key, { value: JSON.stringify(value), ...(expiresAt !== undefined && { expiresAt }) });
    },
    async remove(key) {
      state.removes += 1;
      await guard();
      data.delete(key);
    },
    async acquireLock(key, { ttlMs }): Promise<CacheLock | undefined> {
      await guard();
      if (state.lockMode === "busy") return undefined;
      const current = locks.get(key);
      const now = clock.now();
      if (current && current.expiresAt > now) return undefined;
      const token = ++tokens;
      locks.set(key, { token, expiresAt: now + ttlMs });
      state.locksTaken += 1;
      return {
        takenOver: current !== undefined,
        release: async () => {
          if (locks.get(key)?.token === token) locks.delete(key);
        },
      };
    },
  };
  return { store, state };
}

export const MIN = 60_000;

/**
 * `fromCache` over a scripted source and store under key "k", made deterministic: no
 * jitter, no proactive refresh, 1 ms lock polls, and one try per attempt (callers that do
 * not wait out a backoff); logs and events go to `rec`. Each test says when it wants otherwise.
 */
export function scriptedProvider(
  parts: {
    clock: TestClock;
    source: ReturnType<typeof scriptedSource>;
    store: CredentialCache;
    rec: ReturnType<typeof recorder>;
  },
  overrides: Partial<FromCacheInit> = {},
) {
  return fromCache({
    provider: parts.source.provider,
    cache: parts.store,
    key: "k",
    clock: parts.clock,
    random: () => 0,
    proactiveRefresh: false,
    lockPollMs: 1,
    holderRetries: 0,
    logger: parts.rec.logger,
    onEvent: parts.rec.onEvent,
    ...overrides,
  });
}
