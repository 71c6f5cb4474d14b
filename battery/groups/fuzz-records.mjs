// Bad input from a store: whatever comes back is a miss, reported by an event, never an
// exception to the caller, never a polluted Object.prototype. Values are planted through each
// real store's own `set`, and as raw bytes where the store keeps them (the fs entry file, the
// SQLite row, the Redis key); core's parseRecord is fuzzed directly as well.

import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { encryptedCache, fromCache, parseRecord, REFRESH_DEFAULTS } from "@credcache/core";
import fc from "fast-check";
import {
  expect,
  fakeCredentials,
  prototypeIntact,
  prototypeSnapshot,
  startGroup,
  within,
} from "../harness.mjs";
import { setting } from "../settings.mjs";
import { fsEntryPath, openStore, REDIS_URL, redisKeyOf } from "../stores.mjs";

const g = startGroup("fuzz-records");
const seed = Number(setting("BATTERY_SEED")) || Math.floor(Math.random() * 2 ** 31);
const snapshot = prototypeSnapshot();
const HOUR = 3_600_000;
const now = Date.now();

// ---- arbitraries ----

const accessKeyId = fc.stringMatching(/^ASIA[A-Z0-9]{16}$/);
const secretKey = fc
  .base64String({ minLength: 40, maxLength: 40 })
  .map((s) => `${s.slice(0, 37).replace(/=/g, "A")}aZ9`);
const sessionToken = fc.base64String({ minLength: 100, maxLength: 600 }).map((s) => `Tok${s}`);

/** A valid record that is fresh for hours: a hit when nothing is wrong with it. */
const validRecord = fc.record({
  v: fc.constant(1),
  accessKeyId,
  secretAccessKey: secretKey,
  sessionToken,
  expiration: fc.integer({ min: now + 2 * HOUR, max: now + 6 * HOUR }),
  cachedAt: fc.integer({ min: now - HOUR, max: now }),
});

const FIELDS = ["v", "accessKeyId", "secretAccessKey", "sessionToken", "expiration", "cachedAt"];
const wrongValue = fc.oneof(
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 3 }),
  fc.double(),
  fc.string({ maxLength: 20 }),
  fc.constant(""),
);
const hugeString = fc.integer({ min: 16 * 1024 + 1, max: 300_000 }).map((n) => "A".repeat(n));
/** Where to cut a JSON text: always strictly inside it. */
const cut = fc.double({ min: 0, max: 0.999, noNaN: true });
const truncate = (text, fraction) => text.slice(0, Math.max(1, Math.floor(text.length * fraction)));

const protoAttack = fc.constantFrom(
  // Record fields only under __proto__: nothing of its own.
  (r) => JSON.parse(`{"__proto__": ${JSON.stringify(r)}}`),
  // A good record plus an own "__proto__" key.
  (r) => JSON.parse(`{${JSON.stringify(r).slice(1, -1)}, "__proto__": {"polluted": "yes", "isAdmin": true}}`),
  (r) => JSON.parse(`{${JSON.stringify(r).slice(1, -1)}, "constructor": {"prototype": {"polluted": "yes"}}}`),
  (r) => JSON.parse(`{${JSON.stringify(r).slice(1, -1)}, "prototype": {"polluted": "yes"}}`),
  (r) => JSON.parse(`{"__proto__": {"v": 1}, ${JSON.stringify(r).slice(1, -1).replace('"v":1', '"v":2')}}`),
  (r) => ({ ...r, expiration: JSON.parse('{"__proto__": {"valueOf": 1}}') }),
  (r) => JSON.parse(`{${JSON.stringify(r).slice(1, -1)}, "__proto__": {"__proto__": {"polluted": 1}}}`),
);

/** Hostile values, each labelled with what it tries. */
const hostileValue = fc.oneof(
  fc.jsonValue().map((v) => ({ kind: "random JSON", value: v })),
  fc.string({ maxLength: 200 }).map((v) => ({ kind: "random string", value: v })),
  validRecord.map((r) => ({ kind: "valid record", value: r })),
  fc.tuple(validRecord, fc.constantFrom(...FIELDS)).map(([r, f]) => {
    const copy = { ...r };
    delete copy[f];
    return { kind: `missing ${f}`, value: copy };
  }),
  fc
    .tuple(validRecord, fc.constantFrom(...FIELDS), wrongValue)
    .map(([r, f, w]) => ({ kind: `wrong type ${f}`, value: { ...r, [f]: w } })),
  fc
    .tuple(validRecord, fc.constantFrom(0, 2, "1", -1, 1.5, null, true, [1], {}, 1e9))
    .map(([r, v]) => ({ kind: "wrong version", value: { ...r, v } })),
  fc
    .tuple(
      validRecord,
      fc.constantFrom("accessKeyId", "secretAccessKey", "sessionToken", "source"),
      hugeString,
    )
    .map(([r, f, s]) => ({ kind: `huge ${f}`, value: { ...r, [f]: s } })),
  fc.tuple(validRecord, protoAttack).map(([r, attack]) => ({ kind: "prototype keys", value: attack(r) })),
  fc
    .tuple(validRecord, cut)
    .map(([r, f]) => ({ kind: "truncated JSON", value: truncate(JSON.stringify(r), f) })),
  fc.tuple(validRecord, fc.integer({ min: 33, max: 200 })).map(([r, n]) => {
    const wide = { ...r };
    for (let i = 0; i < n; i++) wide[`x${i}`] = i;
    return { kind: "too many keys", value: wide };
  }),
  validRecord.map((r) => ({ kind: "expired record", value: { ...r, expiration: now - 60_000 } })),
  validRecord.map((r) => ({ kind: "record as JSON text", value: JSON.stringify(r) })),
);

/** Raw bytes where a store keeps a record. Every one of them is garbage. */
const rawBytes = fc.oneof(
  fc
    .uint8Array({ minLength: 1, maxLength: 2048 })
    .map((b) => ({ kind: "random bytes", bytes: Buffer.from(b) })),
  fc
    .tuple(validRecord, cut)
    .map(([r, f]) => ({ kind: "truncated JSON", text: truncate(JSON.stringify(r), f) })),
  fc.constantFrom("", "[]", "{}", '"text"', "1e999", "{{{{", "\u0000\u0000", "true", "-1").map((t) => ({
    kind: `degenerate ${JSON.stringify(t)}`,
    text: t,
  })),
  fc.integer({ min: 70_000, max: 400_000 }).map((n) => ({ kind: "huge", text: `{"a":"${"A".repeat(n)}"}` })),
);

// ---- helpers ----

/** A fake source: fresh credentials each call, registered for the secret scan. */
function freshSource() {
  let calls = 0;
  let last;
  const source = async () => {
    calls += 1;
    last = { ...fakeCredentials("src"), expiration: new Date(Date.now() + 6 * HOUR) };
    g.secrets([last.secretAccessKey, last.sessionToken]);
    return last;
  };
  source.calls = () => calls;
  source.last = () => last;
  return source;
}

/** What parseRecord makes of a value after the store's round trip. */
function oracle(value, roundTrip) {
  let stored;
  try {
    stored = roundTrip(value);
  } catch {
    return { empty: true };
  }
  if (stored === undefined || stored === null) return { empty: true };
  const parsed = parseRecord(stored);
  if (!parsed.ok) return { valid: false, reason: parsed.reason };
  // A record names the key it was written under; the fuzzer cannot know a case's key, so
  // any key it put there is another key's record: a miss.
  if (parsed.record.key !== undefined) return { valid: false, reason: "wrong-key" };
  // Credentials without an expiration are kept noExpirationTtlMs from when they were cached.
  const expiresAt = parsed.record.expiration ?? parsed.record.cachedAt + REFRESH_DEFAULTS.noExpirationTtlMs;
  return { valid: true, expired: expiresAt <= Date.now(), record: parsed.record };
}

const jsonRoundTrip = (v) => JSON.parse(JSON.stringify(v));
const cloneRoundTrip = (v) => structuredClone(v);

function secretsOf(value) {
  if (typeof value !== "object" || value === null) return [];
  return [value.secretAccessKey, value.sessionToken].filter((s) => typeof s === "string" && s.length < 5000);
}

let caseNo = 0;

/**
 * One case: plant (by `plant(key)`), then resolve through a fresh fromCache. Returns what
 * happened; throws a CheckFailure on a broken promise.
 */
async function resolveCase(c, store, plant, expectation) {
  caseNo += 1;
  const key = `fuzz-${seed}-${caseNo}`;
  const planted = await plant(key);
  if (planted === "unplantable") return "unplantable";
  const source = freshSource();
  const seen = g.observe();
  const provider = fromCache({
    provider: source,
    cache: store,
    key,
    logger: seen.logger,
    onEvent: seen.onEvent,
    cacheTimeoutMs: 5000,
    proactiveRefresh: false,
  });
  let identity;
  try {
    identity = await within(provider(), 10_000, "provider()");
  } catch (error) {
    g.seenError(error);
    throw new Error(
      `provider() threw to the caller: ${error?.name}: ${String(error?.message).slice(0, 200)}`,
    );
  } finally {
    provider.close();
  }
  g.seen(identity);
  expect(prototypeIntact(snapshot), "Object.prototype was polluted");
  const reported = seen.events.some((e) => e.type === "record-rejected" || e.type === "cache-error");
  if (expectation.hit) {
    if (source.calls() !== 0 || identity.accessKeyId !== expectation.record.accessKeyId) {
      c.lost(1);
      throw new Error(`a valid record was not served (source calls ${source.calls()})`);
    }
    expect(
      identity.secretAccessKey === expectation.record.secretAccessKey &&
        identity.sessionToken === expectation.record.sessionToken,
      "the served identity differs from the stored record",
    );
    return "hit";
  }
  expect(source.calls() === 1, `expected one source call after a bad record, got ${source.calls()}`);
  expect(
    identity.accessKeyId === source.last().accessKeyId,
    "the caller did not get the source's credentials",
  );
  if (expectation.mustReport) {
    expect(
      reported,
      `a bad value (${expectation.kind}) was a silent miss: no record-rejected or cache-error event ` +
        `(events: ${seen.events.map((e) => e.type).join(",")})`,
    );
  }
  // Nothing lost: the fresh credentials are what the store holds now.
  const after = parseRecord(await store.get(key));
  expect(
    after.ok && after.record.accessKeyId === source.last().accessKeyId,
    "the store does not hold the fresh record",
  );
  return reported ? "reported" : "miss";
}

async function setPathCheck(label, store, roundTrip, numRuns) {
  await g.check(`${label}: hostile values through set()`, async (c) => {
    const cases = fc.sample(hostileValue, { numRuns, seed });
    const outcomes = {};
    for (const { kind, value } of cases) {
      g.secrets(secretsOf(value));
      const o = oracle(value, roundTrip);
      const expectation = {
        kind,
        hit: o.valid === true && !o.expired,
        record: o.record,
        mustReport: o.valid === false,
      };
      const outcome = await c.trial(() =>
        resolveCase(
          c,
          store,
          async (key) => {
            try {
              await store.set(key, value, 0);
            } catch (error) {
              g.seenError(error);
              return "unplantable";
            }
          },
          expectation,
        ),
      );
      outcomes[outcome ?? "failed"] = (outcomes[outcome ?? "failed"] ?? 0) + 1;
    }
    c.note = `seed ${seed}; ${Object.entries(outcomes)
      .map(([k, v]) => `${v} ${k}`)
      .join(", ")}`;
  });
}

async function rawPathCheck(label, store, plantRaw, numRuns) {
  await g.check(`${label}: raw garbage in the store`, async (c) => {
    const cases = fc.sample(rawBytes, { numRuns, seed: seed + 1 });
    const outcomes = {};
    for (const item of cases) {
      const bytes = item.bytes ?? Buffer.from(item.text, "utf8");
      const outcome = await c.trial(() =>
        resolveCase(c, store, (key) => plantRaw(key, bytes, item), {
          kind: item.kind,
          hit: false,
          mustReport: true,
        }),
      );
      outcomes[outcome ?? "failed"] = (outcomes[outcome ?? "failed"] ?? 0) + 1;
    }
    c.note = `seed ${seed + 1}; ${Object.entries(outcomes)
      .map(([k, v]) => `${v} ${k}`)
      .join(", ")}`;
  });
}

// ---- parseRecord ----

await g.check("parseRecord: anything at all", async (c) => {
  const anything = fc.oneof(
    fc.anything({
      withBigInt: true,
      withNullPrototype: true,
      withObjectString: true,
      withBoxedValues: true,
      withMap: true,
      withSet: true,
      withTypedArray: true,
      withSparseArray: true,
      withDate: true,
    }),
    hostileValue.map((h) => h.value),
    hostileValue.map((h) => JSON.stringify(h.value) ?? ""),
    fc.string(),
  );
  const allowed = new Set([...FIELDS, "accountId", "credentialScope", "source"]);
  for (const value of fc.sample(anything, { numRuns: 3000, seed })) {
    await c.trial(() => {
      let result;
      try {
        result = parseRecord(value);
      } catch (error) {
        throw new Error(`parseRecord threw: ${error?.name}: ${String(error?.message).slice(0, 100)}`);
      }
      expect(result && typeof result.ok === "boolean", "no { ok } result");
      if (result.ok) {
        const r = result.record;
        // Plain, or core's frozen redacting prototype: nothing inherited from the input.
        const proto = Object.getPrototypeOf(r);
        const inert =
          proto === Object.prototype ||
          proto === null ||
          (Object.isFrozen(proto) &&
            Object.getOwnPropertyNames(proto).length === 0 &&
            Object.getPrototypeOf(proto) === Object.prototype);
        expect(inert, "a record whose prototype carries data");
        expect(Object.hasOwn(r, "accessKeyId") && Object.hasOwn(r, "secretAccessKey"), "fields not own");
        expect(
          Object.keys(r).every((k) => allowed.has(k)),
          () => `unexpected keys ${Object.keys(r)}`,
        );
        expect(
          r.v === 1 && typeof r.accessKeyId === "string" && typeof r.secretAccessKey === "string",
          "bad record",
        );
      } else {
        expect(typeof result.reason === "string" && result.reason.length > 0, "a rejection without a reason");
      }
      expect(prototypeIntact(snapshot), "Object.prototype was polluted");
    });
  }
  c.note = `seed ${seed}, 3000 values`;
});

// ---- each store ----

const { fileCache } = await import("@credcache/fs").catch(() => ({}));
const { sqliteCache } = await import("@credcache/sqlite").catch(() => ({}));

// memory: values are kept as copies, not JSON.
/** One check that the store could be opened; the store's own checks run only if it was. */
function checkAvailable(label, store, why) {
  return g.check(`${label}: store available`, (c) => {
    c.attempt();
    expect(store, why);
  });
}

await g.check("memory: store available", async (c) => {
  c.attempt();
  await openStore({ kind: "memory" });
});
const memory = await openStore({ kind: "memory" }).catch(() => undefined);
if (memory) await setPathCheck("memory", memory, cloneRoundTrip, 200);

// fs
const fsDir = join(g.tmp("fs", { mode: 0o700 }), "cache");
const fsStore = fileCache ? fileCache({ dir: fsDir }) : undefined;
await checkAvailable("fs", fsStore, "@credcache/fs is not built");
if (fsStore) {
  await setPathCheck("fs", fsStore, jsonRoundTrip, 150);
  await fsStore.get("warm-up").catch(() => {}); // creates the directory, once for every planted file
  const plantFs = async (key, bytes) => {
    writeFileSync(await fsEntryPath(fsDir, key), bytes, { mode: 0o600 });
  };
  await rawPathCheck("fs", fsStore, plantFs, 80);
  // An envelope that is well-formed, around a hostile value.
  await g.check("fs: hostile values in a well-formed entry file", async (c) => {
    const outcomes = {};
    for (const { kind, value } of fc.sample(hostileValue, { numRuns: 100, seed: seed + 2 })) {
      g.secrets(secretsOf(value));
      const o = oracle(value, jsonRoundTrip);
      const outcome = await c.trial(() =>
        resolveCase(
          c,
          fsStore,
          async (key) => {
            writeFileSync(await fsEntryPath(fsDir, key), JSON.stringify({ key, value }), { mode: 0o600 });
          },
          { kind, hit: o.valid === true && !o.expired, record: o.record, mustReport: o.valid === false },
        ),
      );
      outcomes[outcome ?? "failed"] = (outcomes[outcome ?? "failed"] ?? 0) + 1;
    }
    c.note = `seed ${seed + 2}; ${Object.entries(outcomes)
      .map(([k, v]) => `${v} ${k}`)
      .join(", ")}`;
  });
}

// sqlite
const dbPath = join(g.tmp("sqlite", { mode: 0o700 }), "cache.db");
const sqliteStore = sqliteCache ? sqliteCache({ path: dbPath }) : undefined;
await checkAvailable("sqlite", sqliteStore, "@credcache/sqlite is not built");
if (sqliteStore) {
  await setPathCheck("sqlite", sqliteStore, jsonRoundTrip, 150);
  const { default: Database } = await import("better-sqlite3");
  await sqliteStore.get("warm-up"); // creates the schema
  const raw = new Database(dbPath, { timeout: 2000 });
  const put = raw.prepare("INSERT OR REPLACE INTO entries (key, value, expires_at) VALUES (?, ?, NULL)");
  await rawPathCheck(
    "sqlite",
    sqliteStore,
    async (key, bytes, item) => {
      // Random bytes go in as a BLOB, text as TEXT: both are what a foreign writer could leave.
      put.run(key, item.bytes ? bytes : bytes.toString("utf8"));
    },
    80,
  );
  raw.close();
}

// encrypted(fs): the decorator in front of a real store.
if (fileCache) {
  const encDir = join(g.tmp("enc", { mode: 0o700 }), "cache");
  const inner = fileCache({ dir: encDir });
  const encKey = createHash("sha256").update("battery fuzz-records key").digest();
  const encrypted = encryptedCache(inner, { keys: [encKey] });
  await setPathCheck("encrypted(fs)", encrypted, jsonRoundTrip, 100);
  await rawPathCheck(
    "encrypted(fs)",
    encrypted,
    async (key, bytes, item) => {
      // Garbage where the sealed value belongs: a well-formed fs entry around it.
      let value;
      try {
        value = JSON.parse(bytes.toString("utf8"));
      } catch {
        value = bytes.toString("base64");
      }
      if (item.kind === "huge") return "unplantable";
      await inner.set(key, value, 0);
    },
    80,
  );
}

// keyv + redis
const redisStore = await openStore({
  kind: "redis",
  url: REDIS_URL,
  namespace: `battery-fuzz-${g.runId}`,
}).catch((error) => {
  g.seenError(error);
  return undefined;
});
await checkAvailable("keyv+redis", redisStore, "@credcache/keyv is not built or Redis is not reachable");
if (redisStore) {
  await setPathCheck("keyv+redis", redisStore, jsonRoundTrip, 150);
  const { createClient } = await import("@redis/client");
  const client = createClient({ url: REDIS_URL });
  await client.connect();
  await rawPathCheck(
    "keyv+redis",
    redisStore,
    async (key, bytes) => {
      await client.set(redisKeyOf(`battery-fuzz-${g.runId}`, key), bytes);
    },
    80,
  );
  await client.close?.();
  await redisStore.close?.();
}

g.finish();
