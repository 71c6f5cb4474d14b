import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { CacheConfigError, CacheRecordError } from "./errors.js";
import type { CacheLock, CredentialCache } from "./types.js";

/** Options of {@link encryptedCache}. */
export interface EncryptedCacheOptions {
  /**
   * 32-byte AES-256 keys (Buffer, or base64 / hex strings). The first encrypts; every
   * key decrypts, so a new key can be put first while old records still read.
   */
  keys: Array<string | Uint8Array>;
  /** Called when a record fails to decrypt or authenticate, before `get` rejects. */
  onReject?: (key: string, reason: string) => void;
}

interface Sealed {
  enc: "A256GCM";
  /** First 8 hex chars of SHA-256 of the key that sealed it, to pick the key. */
  kid: string;
  iv: string;
  tag: string;
  ct: string;
}

function toKey(input: string | Uint8Array, index: number): Buffer {
  let key: Buffer;
  if (typeof input !== "string" && !(input instanceof Uint8Array)) {
    throw new CacheConfigError(
      `encryptedCache: key #${index} must be a 32-byte Buffer or a hex / base64 string, got ${typeof input}`,
    );
  }
  if (typeof input === "string") {
    key = /^[0-9a-fA-F]{64}$/.test(input) ? Buffer.from(input, "hex") : Buffer.from(input, "base64");
  } else {
    key = Buffer.from(input);
  }
  if (key.length !== 32) {
    throw new CacheConfigError(
      `encryptedCache: key #${index} is ${key.length} bytes; AES-256 needs 32 (64 hex chars or 44 base64 chars). ` +
        "Make one with: node -e \"console.log(require('crypto').randomBytes(32).toString('base64'))\"",
    );
  }
  return key;
}

function isSealed(value: unknown): value is Sealed {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    v.enc === "A256GCM" &&
    typeof v.kid === "string" &&
    typeof v.iv === "string" &&
    typeof v.tag === "string" &&
    typeof v.ct === "string"
  );
}

/**
 * Encrypts values at rest with AES-256-GCM. The cache key is the associated data, so
 * a record copied under another key fails authentication. `get` rejects a record that
 * fails to decrypt with {@link CacheRecordError}; under `fromCache` that is a miss that
 * is reported (`record-rejected`) and removed.
 *
 * @example
 * ```ts
 * const cache = encryptedCache(fileCache(), { keys: [process.env.CREDCACHE_KEY!] });
 * ```
 */
export function encryptedCache(inner: CredentialCache, options: EncryptedCacheOptions): CredentialCache {
  if (!options || !Array.isArray(options.keys) || options.keys.length === 0) {
    throw new CacheConfigError("encryptedCache: pass at least one 32-byte key in `keys`");
  }
  const keys = options.keys.map((k, i) => {
    const key = toKey(k, i);
    return { key, kid: createHash("sha256").update(key).digest("hex").slice(0, 8) };
  });
  const [current] = keys as [(typeof keys)[number]];

  /** A record that cannot be opened is refused loudly: `fromCache` reports it, removes it and goes on. */
  function reject(key: string, reason: string): never {
    options.onReject?.(key, reason);
    throw new CacheRecordError(
      reason.replaceAll(" ", "-"),
      `encryptedCache: the record under this key was refused (${reason})`,
    );
  }

  function open(key: string, sealed: Sealed): unknown {
    const iv = Buffer.from(sealed.iv, "base64");
    const tag = Buffer.from(sealed.tag, "base64");
    // GCM accepts short tags unless told otherwise; a 4-byte tag would make forgery cheap.
    if (iv.length !== 12 || tag.length !== 16) return reject(key, "malformed envelope");
    const candidates = [
      ...keys.filter((k) => k.kid === sealed.kid),
      ...keys.filter((k) => k.kid !== sealed.kid),
    ];
    for (const { key: secret } of candidates) {
      try {
        const decipher = createDecipheriv("aes-256-gcm", secret, iv, { authTagLength: 16 });
        decipher.setAAD(Buffer.from(key, "utf8"));
        decipher.setAuthTag(tag);
        const plain = Buffer.concat([decipher.update(Buffer.from(sealed.ct, "base64")), decipher.final()]);
        return JSON.parse(plain.toString("utf8"));
      } catch {
        // Wrong key, tampered data or foreign associated data: try the next key.
      }
    }
    return reject(key, "authentication failed");
  }

  const wrapped: CredentialCache = {
    async get(key) {
      const value = await inner.get(key);
      if (value === undefined) return undefined;
      // Even null: this decorator never writes it, so it is garbage, not a miss.
      if (!isSealed(value)) return reject(key, "not an encrypted record");
      return open(key, value);
    },
    async set(key, value, ttlSeconds) {
      const iv = randomBytes(12);
      const cipher = createCipheriv("aes-256-gcm", current.key, iv);
      cipher.setAAD(Buffer.from(key, "utf8"));
      const ct = Buffer.concat([cipher.update(JSON.stringify(value), "utf8"), cipher.final()]);
      const sealed: Sealed = {
        enc: "A256GCM",
        kid: current.kid,
        iv: iv.toString("base64"),
        tag: cipher.getAuthTag().toString("base64"),
        ct: ct.toString("base64"),
      };
      await inner.set(key, sealed, ttlSeconds);
    },
    remove: (key) => inner.remove(key),
  };
  if (inner.acquireLock) {
    const acquire = inner.acquireLock.bind(inner);
    wrapped.acquireLock = (key: string, opts: { ttlMs: number }): Promise<CacheLock | undefined> =>
      acquire(key, opts);
  }
  if (inner.close) wrapped.close = inner.close.bind(inner);
  if (inner.keys) wrapped.keys = inner.keys.bind(inner);
  if (inner.prune) wrapped.prune = inner.prune.bind(inner);
  return wrapped;
}
