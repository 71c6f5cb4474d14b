import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { CacheConfigError, CacheRecordError } from "./errors.js";
import type { CacheLock, CredentialCache } from "./types.js";

/** Options of {@link encryptedCache}. */
export interface EncryptedCacheOptions {
  /**
   * 32-byte AES-256 keys: a Buffer, 44 base64 characters or 64 hex characters, random
   * (weak keys are refused). The first encrypts; every key decrypts, so a new key can be
   * put first while old records still read.
   * Make one with `openssl rand -base64 32`.
   */
  keys: Array<string | Uint8Array>;
  /**
   * Names the data set these records belong to (an environment, a tenant). It is bound into
   * every record with the cache key, so a record copied to a store with another namespace
   * (staging to prod, one tenant to another, same encryption key) fails to open.
   * `createCache` passes the store's `namespace`.
   * @default "credcache"
   */
  namespace?: string;
  /** Called when a record fails to decrypt or authenticate, before `get` rejects. */
  onReject?: (key: string, reason: string) => void;
}

/**
 * Version 2 binds the namespace. Version 1 records (no `v`, the cache key alone as associated
 * data) are refused, not read: accepting them would keep the copy-across-namespaces hole open
 * for as long as an old record exists. A refused record is a miss; the source is asked once.
 */
const FORMAT_VERSION = 2;

interface Sealed {
  v: typeof FORMAT_VERSION;
  enc: "A256GCM";
  /** First 8 hex chars of SHA-256 of the key that sealed it, to pick the key. */
  kid: string;
  iv: string;
  tag: string;
  ct: string;
}

const HOW_TO_MAKE_ONE = "Make one with: openssl rand -base64 32";

/** Decodes a key string: exactly 64 hex characters, or exactly 44 characters of canonical base64. */
function decodeKeyText(input: string, index: number): Buffer {
  if (/^[0-9a-fA-F]{64}$/.test(input)) return Buffer.from(input, "hex");
  const decoded = Buffer.from(input, "base64");
  // Node's base64 decoder skips what it does not understand: re-encoding shows whether it did.
  if (input.length === 44 && decoded.length === 32 && decoded.toString("base64") === input) return decoded;
  throw new CacheConfigError(
    `encryptedCache: key #${index} must be 32 bytes written as 44 base64 characters or 64 hex characters ` +
      `(got ${input.length} characters). ${HOW_TO_MAKE_ONE}`,
  );
}

/** Why a 32-byte key is not random enough, or undefined. A random key fails these about once in 10^14. */
function weakness(key: Buffer): string | undefined {
  const distinct = new Set(key).size;
  if (distinct === 1) return "every byte is the same";
  if (key.every((byte) => byte >= 0x20 && byte <= 0x7e))
    return "it is printable text (a passphrase?), not random bytes";
  if (distinct < 16) return `it has only ${distinct} distinct byte values`;
  return undefined;
}

function toKey(input: string | Uint8Array, index: number): Buffer {
  if (typeof input !== "string" && !(input instanceof Uint8Array)) {
    throw new CacheConfigError(
      `encryptedCache: key #${index} must be a 32-byte Buffer or a hex / base64 string, got ${typeof input}`,
    );
  }
  const key = typeof input === "string" ? decodeKeyText(input, index) : Buffer.from(input);
  if (key.length !== 32) {
    throw new CacheConfigError(
      `encryptedCache: key #${index} is ${key.length} bytes; AES-256 needs 32 (64 hex chars or 44 base64 chars). ${HOW_TO_MAKE_ONE}`,
    );
  }
  const why = weakness(key);
  if (why)
    throw new CacheConfigError(
      `encryptedCache: key #${index} is refused as weak: ${why}. ${HOW_TO_MAKE_ONE}`,
    );
  return key;
}

function isSealed(value: unknown): value is Sealed {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    v.v === FORMAT_VERSION &&
    v.enc === "A256GCM" &&
    typeof v.kid === "string" &&
    typeof v.iv === "string" &&
    typeof v.tag === "string" &&
    typeof v.ct === "string"
  );
}

/**
 * Encrypts values at rest with AES-256-GCM. The namespace and the cache key are the
 * associated data, so a record copied under another key, or into a store with another
 * namespace, fails authentication. `get` rejects a record that
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
  const namespace = options.namespace ?? "credcache";
  if (typeof namespace !== "string" || namespace === "" || namespace.includes("\0")) {
    throw new CacheConfigError("encryptedCache: `namespace` must be a non-empty string without NUL");
  }
  /** Version, namespace and key, NUL-separated: no two (namespace, key) pairs give the same bytes. */
  const associatedData = (key: string): Buffer =>
    Buffer.from(`credcache-v${FORMAT_VERSION}\0${namespace}\0${key}`, "utf8");

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
        decipher.setAAD(associatedData(key));
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
    // Who can read the store does not change with encryption.
    ...(inner.scope && { scope: inner.scope }),
    async get(key) {
      const value = await inner.get(key);
      if (value === undefined) return undefined;
      // Even null: this decorator never writes it, so it is garbage, not a miss.
      if (!isSealed(value)) {
        const old =
          typeof value === "object" && value !== null && (value as { enc?: unknown }).enc === "A256GCM";
        return reject(key, old ? "old format" : "not an encrypted record");
      }
      return open(key, value);
    },
    async set(key, value, ttlSeconds) {
      const iv = randomBytes(12);
      const cipher = createCipheriv("aes-256-gcm", current.key, iv);
      cipher.setAAD(associatedData(key));
      const ct = Buffer.concat([cipher.update(JSON.stringify(value), "utf8"), cipher.final()]);
      const sealed: Sealed = {
        v: FORMAT_VERSION,
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
