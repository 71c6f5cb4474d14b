import type { AwsCredentialIdentity, AwsCredentialIdentityProvider, Logger } from "@smithy/types";

export type { AwsCredentialIdentity, AwsCredentialIdentityProvider, Logger };

/**
 * A key/value store for credential records. Mirrors the AWS SDK for PHP's
 * `Aws\CacheInterface`: `get` / `set` / `remove`, TTL in seconds, 0 = no expiry.
 *
 * Values are JSON-compatible data; a store keeps them opaquely. Everything a
 * store returns is treated as untrusted by `fromCache`.
 *
 * @example
 * ```ts
 * const store: CredentialCache = memoryCache({ max: 100 });
 * await store.set("k", { hello: "world" }, 60);
 * await store.get("k"); // { hello: "world" }
 * ```
 */
export interface CredentialCache {
  /** Resolves to the stored value, or `undefined` on a miss or after expiry. */
  get(key: string): Promise<unknown | undefined>;
  /** Stores `value`. `ttlSeconds` of 0 or `undefined` means no expiry. */
  set(key: string, value: unknown, ttlSeconds?: number): Promise<void>;
  /** Deletes the entry; removing a missing key is not an error. */
  remove(key: string): Promise<void>;
  /**
   * Optional try-lock. Resolves to a handle when the caller now holds the lock for
   * `key`, `undefined` when someone else does. A lock whose holder died is taken
   * over after `ttlMs`; a release by a non-holder is a no-op.
   */
  acquireLock?(key: string, opts: { ttlMs: number }): Promise<CacheLock | undefined>;
  /**
   * Who can read this store: one process, every process on this host, or a fleet.
   * `fromCache` writes credentials without an expiration (long-term keys) only to
   * `"process"` and `"host"` stores unless told otherwise. Unset counts as `"fleet"`.
   */
  readonly scope?: "process" | "host" | "fleet";
  /** Releases connections, file handles and timers. */
  close?(): Promise<void>;
  /**
   * Optional: the live keys, as given to `set` (no namespace prefix, no lock entries).
   * Lets tools such as `credcache inspect` and `credcache clear` see every entry.
   */
  keys?(): Promise<string[]>;
  /** Optional: deletes every expired entry now; resolves to how many were deleted. */
  prune?(): Promise<number>;
}

/** A held lock. */
export interface CacheLock {
  release(): Promise<void>;
  /** True when this lock was taken over from a holder whose lease had expired. */
  readonly takenOver?: boolean;
}

/** A source of time in epoch milliseconds. Injectable so that tests never sleep. */
export interface Clock {
  now(): number;
}

/**
 * The record that `fromCache` writes to a store. Plain JSON: `expiration` and
 * `cachedAt` are epoch milliseconds, never a `Date` (Keyv's serializer would
 * turn a `Date` into a string).
 */
export interface CacheRecord {
  v: 1;
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  accountId?: string;
  credentialScope?: string;
  /** Epoch ms. Absent for credentials that never expire. */
  expiration?: number;
  /** Epoch ms at which the source returned these credentials. */
  cachedAt: number;
  /** A label for where the credentials came from, e.g. `imds`. */
  source?: string;
  /**
   * The cache key the record was written under. A record read under another key (copied
   * between stores, or a namespace collision) is a miss.
   */
  key?: string;
}

/** Which refresh window credentials are in. */
export type RefreshWindow = "fresh" | "advisory" | "mandatory" | "expired";

/** Why a refresh started. */
export type RefreshReason = "miss" | "advisory" | "mandatory" | "expired" | "force";

/** Error details as they appear in events: a name and a message with secrets scrubbed. */
export interface EventError {
  name: string;
  message: string;
  code?: string;
}

export interface EventBase {
  /** The cache key. */
  key: string;
  /** Epoch ms, from the provider's clock. */
  time: number;
}

/**
 * Everything `fromCache` reports through `onEvent`. No event ever carries a
 * secret access key or session token; access key ids are truncated.
 */
export type CacheEvent =
  | (EventBase & { type: "hit"; layer: "l1" | "l2"; window: RefreshWindow })
  | (EventBase & { type: "miss" })
  | (EventBase & { type: "refresh-start"; reason: RefreshReason; background: boolean })
  | (EventBase & {
      type: "refresh-success";
      accessKeyId: string;
      expiration?: number;
      durationMs: number;
    })
  | (EventBase & { type: "refresh-failure"; error: EventError; retryAt?: number; background: boolean })
  | (EventBase & { type: "lock-acquired"; takenOver: boolean })
  | (EventBase & { type: "lock-waited"; waitedMs: number; outcome: "adopted" | "acquired" | "timeout" })
  | (EventBase & { type: "lock-busy" })
  | (EventBase & { type: "cache-error"; operation: CacheOperation; error: EventError })
  | (EventBase & { type: "record-rejected"; reason: string })
  /** The shared refresh state was implausible (planted, or a clock far off) and was ignored. */
  | (EventBase & { type: "state-ignored"; reason: string })
  | (EventBase & { type: "stale-served"; accessKeyId: string; expiration?: number; error: EventError })
  | (EventBase & { type: "extended"; accessKeyId: string; expiration: number; error: EventError });

export type CacheOperation = "get" | "set" | "remove" | "acquireLock" | "release" | "open";

export type CacheEventType = CacheEvent["type"];

/** Counters kept by a `fromCache` provider. */
export interface CacheStats {
  hitsL1: number;
  hitsL2: number;
  misses: number;
  sourceCalls: number;
  sourceFailures: number;
  lockWaits: number;
  cacheErrors: number;
  recordsRejected: number;
  staleServed: number;
  extended: number;
}
