// Encryption at rest (attack 4): a record written through core's encryptedCache holds no
// plaintext secret on disk (fs entry, SQLite db, -wal and -shm bytes) or in Redis; a tampered
// record is refused; a record sealed under another cache key (copied) is refused. Each store
// is also written once without encryption, as a control that the byte search finds secrets.

import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { encryptedCache, fromCache } from "@credcache/core";
import { startImdsEmulator } from "@credcache/imds-emulator";
import { createClient } from "@redis/client";
import { expect, imdsSource, startGroup } from "../harness.mjs";
import { fsEntryPath, openStore, REDIS_URL, redisKeyOf } from "../stores.mjs";

const g = startGroup("encryption");
// Random-looking fixed keys: encryptedCache refuses weak ones (one repeated byte, text).
const KEY_A = createHash("sha256").update("battery encryption key A").digest();
const KEY_B = createHash("sha256").update("battery encryption key B").digest();
const imds = await startImdsEmulator();
const source = imdsSource(imds.url);
const redis = createClient({ url: REDIS_URL });
await redis.connect();
const namespace = `battery-enc-${g.runId}`;

/** Pieces of each secret that any leak of 39+ characters would contain. */
function needles(secrets) {
  const out = [];
  for (const s of secrets) for (let i = 0; i + 20 <= s.length; i += 20) out.push(s.slice(i, i + 20));
  return out;
}

/** The raw bytes where each store keeps its data, as one latin1 string per place. */
async function rawBytes(kind, where) {
  if (kind === "fs") {
    return readdirSync(where).map((name) => ({
      place: name,
      text: readFileSync(join(where, name)).toString("latin1"),
    }));
  }
  if (kind === "sqlite") {
    return ["", "-wal", "-shm"]
      .filter((suffix) => existsSync(where + suffix))
      .map((suffix) => ({ place: `db${suffix}`, text: readFileSync(where + suffix).toString("latin1") }));
  }
  const places = [];
  for await (const keys of redis.scanIterator({ MATCH: `${namespace}*`, COUNT: 100 })) {
    for (const key of [keys].flat()) places.push({ place: key, text: String(await redis.get(key)) });
  }
  return places;
}

function leaks(places, secrets) {
  const found = [];
  for (const needle of needles(secrets)) {
    for (const { place, text } of places) if (text.includes(needle)) found.push(place);
  }
  return [...new Set(found)];
}

const dir = g.tmp("stores", { mode: 0o700 });
const specs = {
  fs: { spec: { kind: "fs", dir: join(dir, "fs") }, where: join(dir, "fs") },
  sqlite: { spec: { kind: "sqlite", path: join(dir, "cache.db") }, where: join(dir, "cache.db") },
  "keyv+redis": { spec: { kind: "redis", url: REDIS_URL, namespace }, where: namespace },
};
const kindOf = (label) => (label === "keyv+redis" ? "redis" : label);

async function resolveThrough(cache, key) {
  const seen = g.observe();
  const provider = fromCache({ provider: source, cache, key, logger: seen.logger, onEvent: seen.onEvent });
  try {
    const identity = await provider();
    g.seen(identity);
    return { identity, events: seen.events };
  } finally {
    provider.close();
    g.secrets(imds.secretsIssued());
  }
}

for (const [label, { spec, where }] of Object.entries(specs)) {
  const inner = await openStore(spec);
  const rejections = [];
  const sealed = encryptedCache(inner, {
    keys: [KEY_A],
    onReject: (key, reason) => rejections.push({ key, reason }),
  });

  await g.check(`${label}: no plaintext secret at rest (control: found without encryption)`, async (c) => {
    await c.trial(async () => {
      // Control: the plain store does hold the secret; the search must find it.
      const plain = await resolveThrough(inner, `enc-control-${g.runId}`);
      const plainSecrets = [plain.identity.secretAccessKey, plain.identity.sessionToken];
      expect(
        leaks(await rawBytes(kindOf(label), where), plainSecrets).length > 0,
        "control: the byte search found nothing in a plain store",
      );
      await inner.remove(`enc-control-${g.runId}`);
      imds.rotate();
    });
    await c.trial(async () => {
      const { identity } = await resolveThrough(sealed, `enc-a-${g.runId}`);
      const secrets = [identity.secretAccessKey, identity.sessionToken];
      // sqlite: checkpoint nothing, so the WAL still holds the last pages; read all three files.
      const places = await rawBytes(kindOf(label), where);
      const found = leaks(places, secrets);
      expect(found.length === 0, () => `plaintext secret found in ${found.join(", ")}`);
      c.note = `searched ${places.map((p) => p.place).join(", ")}`;
    });
  });

  await g.check(`${label}: a tampered record is refused`, async (c) => {
    const tamperings = {
      "ciphertext byte": (s) => ({ ...s, ct: flip(s.ct) }),
      "auth tag byte": (s) => ({ ...s, tag: flip(s.tag) }),
      "iv byte": (s) => ({ ...s, iv: flip(s.iv) }),
      "truncated ciphertext": (s) => ({ ...s, ct: s.ct.slice(0, 8) }),
      "no tag": (s) => ({ ...s, tag: "" }),
      // GCM tags shorter than 16 bytes make forgeries far cheaper; a store must insist on 16.
      "tag cut to its first 4 bytes": (s) => ({
        ...s,
        tag: Buffer.from(s.tag, "base64").subarray(0, 4).toString("base64"),
      }),
      "plaintext record instead": () => ({
        v: 1,
        accessKeyId: "ASIAPLANTEDPLANTED00",
        secretAccessKey: "planted-secret-planted-secret-planted-00",
        cachedAt: Date.now(),
      }),
    };
    for (const [name, tamper] of Object.entries(tamperings)) {
      await c.trial(async () => {
        const key = `enc-tamper-${name.replace(/\s/g, "-")}-${g.runId}`;
        imds.rotate();
        const first = await resolveThrough(sealed, key);
        const stored = await inner.get(key);
        expect(stored?.enc === "A256GCM", "the stored value is not sealed");
        await inner.set(key, tamper(stored), 3600);
        imds.rotate();
        const before = rejections.length;
        const second = await resolveThrough(sealed, key);
        const hint = name.includes("4 bytes") ? " (a GCM tag shorter than 16 bytes is accepted)" : "";
        expect(
          second.identity.accessKeyId !== first.identity.accessKeyId,
          `the tampered record (${name}) was served${hint}`,
        );
        expect(rejections.length > before, "onReject was not called");
        expect(
          second.identity.accessKeyId === imds.currentCredentials().accessKeyId,
          "the caller did not get the source's credentials",
        );
      });
    }
    // (kid is only a hint for picking the key; every key is tried, so changing it alone is harmless.)
    c.note = "ct, tag, iv, truncated ct, no tag, 4-byte tag, plaintext substitution";
  });

  await g.check(`${label}: a record copied from another key is refused`, async (c) => {
    await c.trial(async () => {
      imds.rotate();
      const keyA = `enc-copy-a-${g.runId}`;
      const keyB = `enc-copy-b-${g.runId}`;
      const a = await resolveThrough(sealed, keyA);
      await inner.set(keyB, await inner.get(keyA), 3600);
      imds.rotate();
      const before = rejections.length;
      const b = await resolveThrough(sealed, keyB);
      expect(
        b.identity.accessKeyId !== a.identity.accessKeyId,
        "the record sealed for another key was served",
      );
      expect(
        rejections.length > before && rejections.at(-1).key === keyB,
        "onReject was not called for the copy",
      );
    });
    // The raw bytes (the file, the Redis value) copied under the other name.
    const rawCopies = {
      fs: {
        what: "the copied file",
        copy: async (keyA, keyB) =>
          writeFileSync(await fsEntryPath(where, keyB), readFileSync(await fsEntryPath(where, keyA)), {
            mode: 0o600,
          }),
      },
      "keyv+redis": {
        what: "the copied Redis value",
        copy: async (keyA, keyB) =>
          redis.set(redisKeyOf(namespace, keyB), await redis.get(redisKeyOf(namespace, keyA))),
      },
    };
    const rawCopy = rawCopies[label];
    if (rawCopy) {
      await c.trial(async () => {
        imds.rotate();
        const keyA = `enc-rawcopy-a-${g.runId}`;
        const keyB = `enc-rawcopy-b-${g.runId}`;
        const a = await resolveThrough(sealed, keyA);
        await rawCopy.copy(keyA, keyB);
        imds.rotate();
        const b = await resolveThrough(sealed, keyB);
        expect(b.identity.accessKeyId !== a.identity.accessKeyId, `${rawCopy.what} was served`);
      });
    }
  });

  await g.check(`${label}: wrong key refused; rotated keys still read old records`, async (c) => {
    await c.trial(async () => {
      imds.rotate();
      const key = `enc-rotate-${g.runId}`;
      const a = await resolveThrough(sealed, key);
      const otherOnly = encryptedCache(inner, { keys: [KEY_B] });
      // Refused: get() rejects with CacheRecordError (fromCache turns that into a reported miss).
      const refused = await otherOnly.get(key).then(
        (value) => value === undefined,
        (error) => error?.code === "ERR_CREDCACHE_RECORD",
      );
      expect(refused, "a store with another key decrypted the record");
      const rotated = encryptedCache(inner, { keys: [KEY_B, KEY_A] });
      const got = await rotated.get(key);
      expect(
        got?.accessKeyId === a.identity.accessKeyId,
        "after key rotation the old record no longer reads",
      );
    });
  });
  await inner.close?.();
}

function flip(base64) {
  const bytes = Buffer.from(base64, "base64");
  if (bytes.length === 0) return "AA==";
  bytes[Math.floor(bytes.length / 2)] ^= 0x01;
  return bytes.toString("base64");
}

await redis.close?.();
g.secrets(imds.secretsIssued());
await imds.close();
g.finish();
