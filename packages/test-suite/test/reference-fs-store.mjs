// A store backed by files in `location`, for the suite's cross-process tests. Plain JS
// so that child processes can load it with node. Deliberately simple: one JSON file
// per key (hashed name, temp file + rename), one O_EXCL lock file per key.
import { createHash, randomUUID } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { assertCacheKey, assertLockTtl, expiresAtFromTtl } from "@credcache/core";

const hash = (key) => createHash("sha256").update(key).digest("hex");

async function readJson(file) {
  try {
    return JSON.parse(await fs.readFile(file, "utf8"));
  } catch (error) {
    if (error.code === "ENOENT") return undefined;
    throw error;
  }
}

/** @param {{ location: string }} options */
export function referenceFsStore({ location }) {
  const dataFile = (key) => path.join(location, `${hash(key)}.json`);
  const lockFile = (key) => path.join(location, `${hash(key)}.lock`);

  async function writeAtomically(file, text) {
    const temp = `${file}.${randomUUID()}.tmp`;
    await fs.writeFile(temp, text, { mode: 0o600 });
    await fs.rename(temp, file);
  }

  async function tryCreateLock(file, token, ttlMs) {
    try {
      const handle = await fs.open(file, "wx", 0o600);
      try {
        await handle.writeFile(JSON.stringify({ token, expiresAt: Date.now() + ttlMs }));
      } finally {
        await handle.close();
      }
      return true;
    } catch (error) {
      if (error.code === "EEXIST") return false;
      throw error;
    }
  }

  return {
    async get(key) {
      assertCacheKey(key);
      const entry = await readJson(dataFile(key));
      if (!entry) return undefined;
      if (entry.expiresAt !== null && entry.expiresAt <= Date.now()) return undefined;
      return entry.value;
    },
    async set(key, value, ttlSeconds) {
      assertCacheKey(key);
      const expiresAt = expiresAtFromTtl(ttlSeconds, Date.now()) ?? null;
      await writeAtomically(dataFile(key), JSON.stringify({ value, expiresAt }));
    },
    async remove(key) {
      assertCacheKey(key);
      await fs.rm(dataFile(key), { force: true });
    },
    async acquireLock(key, { ttlMs }) {
      assertCacheKey(key);
      assertLockTtl(ttlMs);
      const file = lockFile(key);
      const token = randomUUID();
      if (await tryCreateLock(file, token, ttlMs)) return handle(file, token, false);
      // Held, or being written this very moment (then it reads as garbage: treat as held).
      let current;
      try {
        current = await readJson(file);
      } catch {
        return undefined;
      }
      if (!current) return (await tryCreateLock(file, token, ttlMs)) ? handle(file, token, false) : undefined;
      if (current.expiresAt > Date.now()) return undefined;
      // Stale: move it aside, then check we moved the stale one and not a fresh successor.
      const aside = `${file}.${randomUUID()}.stale`;
      try {
        await fs.rename(file, aside);
      } catch {
        return undefined;
      }
      const moved = await readJson(aside).catch(() => undefined);
      if (moved?.token !== current.token) {
        await fs.link(aside, file).catch(() => {});
        await fs.rm(aside, { force: true });
        return undefined;
      }
      await fs.rm(aside, { force: true });
      return (await tryCreateLock(file, token, ttlMs)) ? handle(file, token, true) : undefined;
    },
    async close() {},
  };

  function handle(file, token, takenOver) {
    return {
      takenOver,
      async release() {
        const current = await readJson(file).catch(() => undefined);
        if (current?.token === token) await fs.rm(file, { force: true });
      },
    };
  }
}

export default referenceFsStore;
