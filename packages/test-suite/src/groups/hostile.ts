import { randomBytes } from "node:crypto";
import {
  type AwsCredentialIdentity,
  type CacheEvent,
  type CredentialCache,
  fromCache,
} from "@credcache/core";
import type { Check } from "../check.js";
import type { TestClock } from "../types.js";

const HOUR_MS = 60 * 60_000;
const MIB = 1024 * 1024;
/** The property a prototype-pollution attempt in the garbage tries to plant. */
export const POLLUTION_MARK = "credcacheSuitePolluted";

/** A source that counts its calls and returns credentials expiring in 1 h. */
function scriptedSource(clock: TestClock) {
  const state = { calls: 0, last: undefined as AwsCredentialIdentity | undefined };
  const provider = async (): Promise<AwsCredentialIdentity> => {
    state.calls += 1;
    const serial = String(state.calls).padStart(4, "0");
    state.last = {
      accessKeyId: `ASIASUITE${serial}${randomBytes(4).toString("hex").toUpperCase()}`,
      secretAccessKey: `suite-secret-${randomBytes(12).toString("hex")}`,
      sessionToken: `suite-token-${randomBytes(24).toString("hex")}`,
      expiration: new Date(clock.now() + HOUR_MS),
    };
    return state.last;
  };
  return { provider, state };
}

function record(now: number): Record<string, unknown> {
  return {
    v: 1,
    accessKeyId: "ASIAGARBAGE000000001",
    secretAccessKey: "garbage-secret",
    sessionToken: "garbage-token",
    expiration: now + HOUR_MS,
    cachedAt: now,
  };
}

function without(value: Record<string, unknown>, name: string): Record<string, unknown> {
  const { [name]: _dropped, ...rest } = value;
  return rest;
}

/** What a hostile or broken writer might have left under a credential key. */
export const garbage: Array<{ label: string; make: (now: number) => unknown }> = [
  { label: "a string of random bytes", make: () => randomBytes(512).toString("latin1") },
  { label: "a string with NUL characters and lone surrogates", make: () => '\u0000{\ud800"v":1\udfff\u0000' },
  { label: "an empty string", make: () => "" },
  { label: "truncated JSON of a record", make: (now) => JSON.stringify(record(now)).slice(0, 50) },
  { label: "a JSON string of a record with v: 2", make: (now) => JSON.stringify({ ...record(now), v: 2 }) },
  { label: "a number", make: () => 42 },
  { label: "a boolean", make: () => true },
  { label: "null", make: () => null },
  { label: "an empty array", make: () => [] },
  { label: "an array holding a record", make: (now) => [record(now)] },
  { label: "an empty object", make: () => ({}) },
  {
    label: "an object with a __proto__ key",
    make: (now) =>
      JSON.parse(
        `{"__proto__":{"${POLLUTION_MARK}":"yes","v":1},"accessKeyId":"ASIAPROTO","cachedAt":${now}}`,
      ) as unknown,
  },
  {
    label: "an object with constructor.prototype keys",
    make: () => ({ constructor: { prototype: { [POLLUTION_MARK]: "yes" } }, v: 1 }),
  },
  { label: "a record with v: 2", make: (now) => ({ ...record(now), v: 2 }) },
  { label: "a record without v", make: (now) => without(record(now), "v") },
  { label: "a record without secretAccessKey", make: (now) => without(record(now), "secretAccessKey") },
  { label: "a record without cachedAt", make: (now) => without(record(now), "cachedAt") },
  {
    label: "a record whose expiration is a date string",
    make: (now) => ({ ...record(now), expiration: new Date(now + HOUR_MS).toISOString() }),
  },
  {
    label: "a record with wrongly typed fields",
    make: (now) => ({ ...record(now), accessKeyId: 12345, secretAccessKey: ["x"], cachedAt: "yesterday" }),
  },
  {
    label: "a record with a 32 KiB session token",
    make: (now) => ({ ...record(now), sessionToken: "T".repeat(32 * 1024) }),
  },
  { label: "a 1 MiB string", make: () => `{"v":1,"accessKeyId":"${"A".repeat(MIB)}` },
];

function prototypeNames(): string[] {
  return Object.getOwnPropertyNames(Object.prototype).sort();
}

/** Fails (after undoing it) when anything was added to Object.prototype. */
function expectNoPollution(before: string[], label: string): void {
  const added = prototypeNames().filter((name) => !before.includes(name));
  const probe = {} as Record<string, unknown>;
  const planted = probe[POLLUTION_MARK] !== undefined;
  for (const name of added) delete (Object.prototype as Record<string, unknown>)[name];
  if (added.length > 0 || planted) {
    throw new Error(`Object.prototype was polluted (${added.join(", ") || POLLUTION_MARK}) by ${label}`);
  }
}

function cachedProvider(
  store: CredentialCache,
  key: string,
  clock: TestClock,
  provider: () => Promise<AwsCredentialIdentity>,
  events: CacheEvent[],
) {
  return fromCache({
    provider,
    cache: store,
    key,
    clock,
    onEvent: (event) => events.push(event),
    proactiveRefresh: false,
    // A slow but working store must not be mistaken for a broken one here.
    cacheTimeoutMs: 10_000,
    lockTtlMs: 10_000,
  });
}

export const hostileChecks: Check[] = garbage.map(({ label, make }) => ({
  name: `${label} under the key yields fresh credentials through fromCache, never an exception`,
  timeoutMs: 30_000,
  async run(t) {
    const store = await t.store();
    const key = t.key("hostile");
    const before = prototypeNames();
    try {
      try {
        await store.set(key, make(t.clock.now()));
      } catch {
        // A store may refuse to keep some garbage at all; what matters is what reads do.
      }
      let stored: unknown;
      let readFailed = false;
      try {
        stored = await store.get(key);
      } catch {
        readFailed = true;
      }

      const source = scriptedSource(t.clock);
      const events: CacheEvent[] = [];
      const first = cachedProvider(store, key, t.clock, source.provider, events);
      let identity: AwsCredentialIdentity;
      try {
        identity = await first();
      } catch (error) {
        throw new Error(
          `fromCache threw with ${label} in the store: ${error instanceof Error ? error.message : String(error)}`,
        );
      } finally {
        await first.close();
      }
      t.expect(identity.accessKeyId, "credentials come from the source").toBe(source.state.last?.accessKeyId);
      t.expect(source.state.calls, "source calls").toBe(1);
      const types = events.map((event) => event.type);
      if (readFailed) {
        t.expect(types, "a store read that throws is reported as a cache-error").toContain("cache-error");
      } else if (stored !== undefined && stored !== null) {
        t.expect(types, "the bad record is reported").toContain("record-rejected");
      }

      // The garbage is gone for good: a new provider (empty L1) reads the new record.
      const secondEvents: CacheEvent[] = [];
      const second = cachedProvider(store, key, t.clock, source.provider, secondEvents);
      try {
        const again = await second();
        t.expect(again.accessKeyId, "a second provider reads the rewritten record").toBe(
          identity.accessKeyId,
        );
      } finally {
        await second.close();
      }
      t.expect(source.state.calls, "source calls after a second provider").toBe(1);
    } finally {
      expectNoPollution(before, label);
    }
  },
}));
