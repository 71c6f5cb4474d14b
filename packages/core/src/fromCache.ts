import type { AwsCredentialIdentity, AwsCredentialIdentityProvider, Logger } from "@smithy/types";
import {
  CacheConfigError,
  CacheRecordError,
  CacheTimeoutError,
  CredentialsUnavailableError,
} from "./errors.js";
import { parseRecord, toIdentity, toRecord } from "./record.js";
import { describeError, truncateAccessKeyId } from "./redact.js";
import type {
  CacheEvent,
  CacheLock,
  CacheRecord,
  CacheStats,
  Clock,
  CredentialCache,
  RefreshReason,
  RefreshWindow,
} from "./types.js";

const MINUTE = 60_000;
/** The PHP SDK's default cache key. */
export const DEFAULT_CACHE_KEY = "aws_cached_credentials";
/** The SDK client re-calls its credential provider when this much time is left. */
const SDK_REFRESH_WINDOW_MS = 5 * MINUTE;
/** How long past expiry a record stays in the store, for static stability in new processes. */
const STALE_KEEP_MS = 60 * MINUTE;
/** setTimeout's longest delay; beyond it the proactive refresh timer is not set. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const LOG_PREFIX = "@credcache/core - fromCache";

/** Options of {@link fromCache}. */
export interface FromCacheInit {
  /** Where credentials come from on a miss: any SDK v3 credential provider. */
  provider: AwsCredentialIdentityProvider;
  /** The shared (L2) store. Without one, `fromCache` is an in-process memo with refresh windows. */
  cache?: CredentialCache;
  /**
   * The store key.
   * @default "aws_cached_credentials" (the PHP SDK's key)
   */
  key?: string;
  /** A label stored with the record (`imds`, `sts`, ...), shown by `credcache inspect`. */
  source?: string;
  /**
   * Start refreshing in the background when this much time is left before expiry.
   * Each process picks its own point between this and `mandatoryRefreshMs`, so a
   * fleet does not try at the same second.
   * @default 900_000 (15 min)
   */
  advisoryRefreshMs?: number;
  /**
   * Refresh before answering when this much time is left. Keep it above the SDK
   * client's own 5 min window, or the client will call back on every request.
   * @default 600_000 (10 min)
   */
  mandatoryRefreshMs?: number;
  /**
   * When the source fails and the credentials in hand have expired, serve them for
   * another 5–10 min with a warning and try again after that (the SDK's static
   * stability). Off by default; on in the instance-metadata preset.
   * @default false
   */
  staleIfError?: boolean;
  /**
   * How long a cross-process refresh lock lives if its holder dies.
   * @default 10_000
   */
  lockTtlMs?: number;
  /**
   * How long a caller that must refresh waits for another holder of the lock,
   * re-reading the store meanwhile, before it fetches on its own.
   * @default lockTtlMs + 2_000
   */
  lockWaitMs?: number;
  /**
   * Poll interval while waiting for the lock (jittered ±50%).
   * @default 50
   */
  lockPollMs?: number;
  /**
   * Longest time any single store call may take before it counts as failed.
   * @default 1_000
   */
  cacheTimeoutMs?: number;
  /**
   * First retry delay after a failed refresh; doubles per failure up to `retryMaxMs`,
   * with jitter (50–100% of the step). Also the minimum gap between two fetches in the
   * mandatory window while the source keeps returning the same near-expiry set.
   * @default 5_000
   */
  retryBaseMs?: number;
  /** @default 60_000 */
  retryMaxMs?: number;
  /**
   * Refresh in the background on a timer at the advisory point, so a long-running
   * process never waits for a fetch (the SDK client only calls back when 5 min are
   * left, which is inside the mandatory window). Timers are `unref`'d.
   * @default true
   */
  proactiveRefresh?: boolean;
  /** Injectable clock (epoch ms). @default Date */
  clock?: Clock;
  /** Injectable random source in [0, 1), for jitter. @default Math.random */
  random?: () => number;
  /** An SDK-compatible logger. Lines are prefixed `@credcache/core - fromCache`. */
  logger?: Logger;
  /** Called with every {@link CacheEvent}. Exceptions it throws are ignored. */
  onEvent?: (event: CacheEvent) => void;
}

/** Options the SDK passes when it calls a credential provider. */
export interface CachedProviderOptions {
  /** Ignore L1 and L2 freshness and fetch from the source. */
  forceRefresh?: boolean;
  [property: string]: unknown;
}

/** What {@link fromCache} returns: an SDK credential provider plus cache controls. */
export interface CachedCredentialProvider extends AwsCredentialIdentityProvider {
  (options?: CachedProviderOptions): Promise<AwsCredentialIdentity>;
  /**
   * Drops the cached credentials from L1 and the store. The store entry is removed
   * only if it still holds the same access key id, so a racing refresh by another
   * process is not undone.
   */
  invalidate(): Promise<void>;
  /** Counters since creation. */
  stats(): CacheStats;
  /**
   * Cancels the proactive refresh timer and starts no new refresh. Resolves when a
   * refresh already under way has finished writing to the store and released its lock,
   * so a short-lived process can close its store after it and leave no lock behind.
   * Waits at most `lockTtlMs`: a source that never answers does not hang a shutdown.
   */
  close(): Promise<void>;
}

/** Credentials held in L1, with the points in time at which their window changes. */
interface Held {
  record: CacheRecord;
  identity: AwsCredentialIdentity;
  /** Until then: fresh. Infinity when the credentials never expire. */
  freshUntil: number;
  /** From then: mandatory refresh. */
  mandatoryAt: number;
  /** From then: expired. */
  expiresAt: number;
  /**
   * No fetch before then, because the source had nothing newer when this set was fetched
   * (see {@link recheckAt}). Zero for a set fetched while it was fresh.
   */
  recheckAt: number;
  /** Set when static stability extended the credentials past their real expiry. */
  extended?: boolean;
}

const NO_LOCK: CacheLock = { release: async () => {} };

/**
 * Store calls race a deadline. One shared, unref'd sweeper checks every pending call
 * instead of a timer per call: a timer costs more than a whole memory-store hit.
 */
interface Deadline {
  at: number;
  fail: () => void;
}
const deadlines = new Set<Deadline>();
let sweeper: NodeJS.Timeout | undefined;
const SWEEP_MS = 20;

function sweepDeadlines(): void {
  const now = Date.now();
  for (const deadline of deadlines) {
    if (deadline.at <= now) {
      deadlines.delete(deadline);
      // Timers run before I/O callbacks: after a stalled event loop, the reply may be
      // waiting in this very turn. Fail only if it is still missing after the I/O phase.
      setImmediate(deadline.fail);
    }
  }
  if (deadlines.size === 0 && sweeper) {
    clearInterval(sweeper);
    sweeper = undefined;
  }
}

function withDeadline<T>(call: Promise<T>, ms: number, timeoutError: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const deadline: Deadline = {
      at: Date.now() + ms,
      fail: () => {
        if (!settled) reject(timeoutError());
      },
    };
    deadlines.add(deadline);
    if (!sweeper) {
      sweeper = setInterval(sweepDeadlines, Math.max(1, Math.min(SWEEP_MS, ms)));
      sweeper.unref();
    }
    call.then(
      (value) => {
        settled = true;
        deadlines.delete(deadline);
        resolve(value);
      },
      (error) => {
        settled = true;
        deadlines.delete(deadline);
        reject(error);
      },
    );
  });
}

function checkMs(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw new CacheConfigError(
      `fromCache: ${name} must be a non-negative number of milliseconds, got ${value}`,
    );
  }
  return value;
}

/**
 * Wraps a credential provider with an in-process memo (L1) and a shared store (L2)
 * that every process on a host, or every host in a fleet, can read. Credentials are
 * fetched once, ahead of expiry, under the store's lock, and good credentials keep
 * being served while the source is slow or down. A failing store never fails a
 * resolution: it degrades to "no L2" for that call and raises a `cache-error` event.
 *
 * @example
 * ```ts
 * import { fromInstanceMetadata } from "@aws-sdk/credential-providers";
 * import { fromCache } from "@credcache/core";
 * import { fileCache } from "@credcache/fs";
 *
 * const credentials = fromCache({
 *   provider: fromInstanceMetadata({ timeout: 1000, maxRetries: 2 }),
 *   cache: fileCache(),
 *   key: "imds",
 *   staleIfError: true,
 * });
 * const sqs = new SQSClient({ credentials });
 * ```
 */
export function fromCache(init: FromCacheInit): CachedCredentialProvider {
  if (typeof init?.provider !== "function") {
    throw new CacheConfigError("fromCache: `provider` must be a credential provider function");
  }
  const source = init.provider;
  const cache = init.cache;
  const key = init.key ?? DEFAULT_CACHE_KEY;
  if (typeof key !== "string" || key.length === 0) {
    throw new CacheConfigError("fromCache: `key` must be a non-empty string");
  }
  const advisoryMs = checkMs("advisoryRefreshMs", init.advisoryRefreshMs, 15 * MINUTE);
  const mandatoryMs = checkMs("mandatoryRefreshMs", init.mandatoryRefreshMs, 10 * MINUTE);
  if (mandatoryMs > advisoryMs) {
    throw new CacheConfigError(
      `fromCache: mandatoryRefreshMs (${mandatoryMs}) must not exceed advisoryRefreshMs (${advisoryMs})`,
    );
  }
  const lockTtlMs = checkMs("lockTtlMs", init.lockTtlMs, 10_000);
  const lockWaitMs = checkMs("lockWaitMs", init.lockWaitMs, lockTtlMs + 2_000);
  const lockPollMs = Math.max(1, checkMs("lockPollMs", init.lockPollMs, 50));
  const cacheTimeoutMs = checkMs("cacheTimeoutMs", init.cacheTimeoutMs, 1_000);
  const retryBaseMs = checkMs("retryBaseMs", init.retryBaseMs, 5_000);
  const retryMaxMs = checkMs("retryMaxMs", init.retryMaxMs, 60_000);
  const clock = init.clock ?? Date;
  const random = init.random ?? Math.random;
  const logger = init.logger;
  const onEvent = init.onEvent;
  const staleIfError = init.staleIfError ?? false;
  const proactive = init.proactiveRefresh ?? true;
  const sourceLabel = init.source;
  if (mandatoryMs <= SDK_REFRESH_WINDOW_MS && mandatoryMs !== 0) {
    logger?.warn?.(
      `${LOG_PREFIX} mandatoryRefreshMs (${mandatoryMs}) is not above the SDK client's 5 min window; ` +
        "the client may call the provider on every request near expiry",
    );
  }

  // This process's own refresh point inside the advisory window, so a fleet spreads out.
  // (1 - random) is in (0, 1], so the point lies in (mandatory, advisory].
  const advisoryPointMs = mandatoryMs + (1 - random()) * (advisoryMs - mandatoryMs);

  const stats: CacheStats = {
    hitsL1: 0,
    hitsL2: 0,
    misses: 0,
    sourceCalls: 0,
    sourceFailures: 0,
    lockWaits: 0,
    cacheErrors: 0,
    recordsRejected: 0,
    staleServed: 0,
    extended: 0,
  };

  let held: Held | undefined;
  let blocking: Promise<AwsCredentialIdentity> | undefined;
  let background: Promise<void> | undefined;
  /** No source call before this time (backoff after failures, or same-set refetches). */
  let nextAttemptAt = 0;
  let failures = 0;
  /** The error expired credentials failed with, repeated until `nextAttemptAt`. */
  let lastFailure: Error | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  /** Secrets of the last few credential sets, scrubbed from every error text we report. */
  const recentSecrets: string[] = [];
  const remember = (record: CacheRecord) => {
    for (const secret of [record.secretAccessKey, record.sessionToken]) {
      if (secret && !recentSecrets.includes(secret)) recentSecrets.push(secret);
    }
    if (recentSecrets.length > 8) recentSecrets.splice(0, recentSecrets.length - 8);
  };
  const secrets = () => recentSecrets;

  function emit(event: CacheEvent): void {
    if (!onEvent) return;
    try {
      onEvent(event);
    } catch {
      // A faulty listener must not break credential resolution.
    }
  }

  function hold(record: CacheRecord, extendedUntil?: number): Held {
    const expiresAt = extendedUntil ?? record.expiration ?? Number.POSITIVE_INFINITY;
    remember(record);
    const next: Held = {
      record,
      identity: toIdentity(extendedUntil ? { ...record, expiration: extendedUntil } : record),
      freshUntil: extendedUntil ? 0 : expiresAt - advisoryPointMs,
      mandatoryAt: extendedUntil ? 0 : expiresAt - mandatoryMs,
      expiresAt,
      recheckAt: extendedUntil ? 0 : recheckAt(record),
      ...(extendedUntil !== undefined && { extended: true }),
    };
    held = next;
    scheduleProactiveRefresh();
    return next;
  }

  /**
   * When a set was fetched inside the refresh windows, the source had nothing newer then
   * (EC2 makes the next set available as late as 5 min before expiry). Asking again at
   * once would return the same set, so the next fetch waits a quarter of the time that
   * was left (at least `retryBaseMs`, at most half of it, so several tries fit before
   * expiry). Computed from the stored record alone, so every process agrees on it and a
   * fleet asks once per interval, not once per process.
   */
  function recheckAt(record: CacheRecord): number {
    if (record.expiration === undefined) return 0;
    const leftAtFetch = record.expiration - record.cachedAt;
    if (leftAtFetch > advisoryMs) return 0;
    return record.cachedAt + Math.min(Math.max(retryBaseMs, leftAtFetch / 4), leftAtFetch / 2);
  }

  /** The earliest time a source call may be made for the credentials in hand. */
  function attemptAt(h: Held): number {
    return Math.max(nextAttemptAt, h.recheckAt);
  }

  function windowOf(h: Held, now: number): RefreshWindow {
    if (now >= h.expiresAt) return "expired";
    if (now >= h.mandatoryAt) return "mandatory";
    if (now >= h.freshUntil) return "advisory";
    return "fresh";
  }

  function scheduleProactiveRefresh(): void {
    if (!proactive || closed) return;
    if (timer) clearTimeout(timer);
    timer = undefined;
    const h = held;
    if (!h || !Number.isFinite(h.expiresAt)) return;
    const at = Math.max(h.freshUntil, attemptAt(h));
    const delay = at - clock.now();
    if (delay > MAX_TIMER_MS || at >= h.expiresAt) return;
    timer = setTimeout(
      () => {
        timer = undefined;
        const now = clock.now();
        if (held && windowOf(held, now) !== "fresh") startBackground("advisory");
      },
      Math.max(0, delay),
    );
    timer.unref?.();
  }

  function backoff(): number {
    failures += 1;
    const step = Math.min(retryMaxMs, retryBaseMs * 2 ** (failures - 1));
    return step * (0.5 + random() * 0.5);
  }

  // ---- the store, wrapped so that it can never throw, hang or lie to the caller ----

  function guarded<T>(operation: string, run: () => Promise<T>): Promise<T> {
    let call: Promise<T>;
    try {
      call = Promise.resolve(run());
    } catch (error) {
      return Promise.reject(error);
    }
    return withDeadline(call, cacheTimeoutMs, () => new CacheTimeoutError(operation, cacheTimeoutMs));
  }

  function reportCacheError(operation: "get" | "set" | "remove" | "acquireLock" | "release", error: unknown) {
    stats.cacheErrors += 1;
    const described = describeError(error, secrets());
    logger?.warn?.(`${LOG_PREFIX} cache ${operation} failed for key "${key}": ${described.message}`);
    emit({ type: "cache-error", key, time: clock.now(), operation, error: described });
  }

  /** Set when the last store read failed: the rest of that resolution skips the store. */
  let storeFailing = false;

  async function readStore(): Promise<CacheRecord | undefined> {
    if (!cache) return undefined;
    let value: unknown;
    try {
      value = await guarded("get", () => cache.get(key));
      storeFailing = false;
    } catch (error) {
      if (error instanceof CacheRecordError) {
        // The store itself found garbage under the key (and may have removed it already).
        await rejectRecord(error.reason);
        return undefined;
      }
      storeFailing = true;
      reportCacheError("get", error);
      return undefined;
    }
    if (value === undefined || value === null) return undefined;
    const parsed = parseRecord(value);
    if (parsed.ok) return parsed.record;
    await rejectRecord(parsed.reason);
    return undefined;
  }

  async function rejectRecord(reason: string): Promise<void> {
    stats.recordsRejected += 1;
    logger?.warn?.(`${LOG_PREFIX} rejected the record under "${key}" (${reason}); removing it`);
    emit({ type: "record-rejected", key, time: clock.now(), reason });
    if (!cache) return;
    try {
      await guarded("remove", () => cache.remove(key));
    } catch (error) {
      reportCacheError("remove", error);
    }
  }

  async function writeStore(record: CacheRecord): Promise<void> {
    if (!cache) return;
    // The record outlives its expiry, so that a process started during an outage (with
    // staleIfError) still has something to extend; it is never served as valid.
    const ttlSeconds =
      record.expiration === undefined
        ? 0
        : Math.max(1, Math.ceil((record.expiration + STALE_KEEP_MS - clock.now()) / 1000));
    try {
      await guarded("set", () => cache.set(key, { ...record }, ttlSeconds));
    } catch (error) {
      reportCacheError("set", error);
    }
  }

  async function tryLock(): Promise<CacheLock | undefined> {
    if (!cache?.acquireLock) return NO_LOCK;
    const acquire = cache.acquireLock.bind(cache);
    const pending = Promise.resolve().then(() => acquire(key, { ttlMs: lockTtlMs }));
    try {
      const lock = await guarded("acquireLock", () => pending);
      if (lock) emit({ type: "lock-acquired", key, time: clock.now(), takenOver: lock.takenOver === true });
      return lock;
    } catch (error) {
      // A lock that arrives after we gave up must still be released.
      pending.then((late) => late?.release()).catch(() => {});
      reportCacheError("acquireLock", error);
      // A slow lock on a store that otherwise answers is contention (a loaded host, many
      // processes): treat it as busy, so this caller waits for the holder instead of
      // fetching too. A store that fails outright cannot lock: go on without a lock.
      if (error instanceof CacheTimeoutError && !storeFailing) return undefined;
      return NO_LOCK;
    }
  }

  async function release(lock: CacheLock): Promise<void> {
    if (lock === NO_LOCK) return;
    try {
      await guarded("release", () => lock.release());
    } catch (error) {
      reportCacheError("release", error);
    }
  }

  // ---- the source ----

  async function fetchFromSource(
    options: CachedProviderOptions | undefined,
    reason: RefreshReason,
    isBackground: boolean,
  ): Promise<Held> {
    const started = clock.now();
    emit({ type: "refresh-start", key, time: started, reason, background: isBackground });
    logger?.debug?.(`${LOG_PREFIX} fetching credentials for "${key}" (${reason})`);
    stats.sourceCalls += 1;
    const { forceRefresh: _ignored, ...identityProperties } = options ?? {};
    const identity = await source(identityProperties);
    const now = clock.now();
    if (
      !identity ||
      typeof identity.accessKeyId !== "string" ||
      typeof identity.secretAccessKey !== "string"
    ) {
      throw new CredentialsUnavailableError("credcache: the source returned no credentials");
    }
    const expiration = identity.expiration?.getTime();
    if (expiration !== undefined && !(expiration > now)) {
      throw new CredentialsUnavailableError(
        `credcache: the source returned credentials that expired at ${new Date(expiration).toISOString()}`,
      );
    }
    const record = toRecord(identity, now, sourceLabel);
    failures = 0;
    lastFailure = undefined;
    nextAttemptAt = 0;
    const next = hold(record); // also schedules the next proactive refresh
    await writeStore(record);
    emit({
      type: "refresh-success",
      key,
      time: clock.now(),
      accessKeyId: truncateAccessKeyId(record.accessKeyId),
      ...(record.expiration !== undefined && { expiration: record.expiration }),
      durationMs: clock.now() - started,
    });
    return next;
  }

  /**
   * A stored record makes a fetch pointless when it is fresh, or when whoever wrote it
   * asked the source so recently that asking again would return the same set.
   */
  function spareFetch(record: CacheRecord, now: number, blocking: boolean): boolean {
    const exp = record.expiration ?? Number.POSITIVE_INFINITY;
    if (exp <= now) return false;
    if (exp - now > (blocking ? mandatoryMs : advisoryPointMs)) return true;
    return now < recheckAt(record);
  }

  /**
   * Holds a stored record instead of fetching, when it spares the fetch and is not older
   * than what is in hand. Counts and reports it as an L2 hit.
   */
  function adoptIfSpare(stored: CacheRecord | undefined, blocking: boolean): Held | undefined {
    const now = clock.now();
    if (!stored || !spareFetch(stored, now, blocking)) return undefined;
    const h = held;
    if (
      h &&
      !h.extended &&
      now < h.expiresAt &&
      (stored.expiration ?? Number.POSITIVE_INFINITY) < h.expiresAt
    ) {
      return undefined;
    }
    const adopted = hold(stored);
    stats.hitsL2 += 1;
    if (onEvent) emit({ type: "hit", key, time: now, layer: "l2", window: windowOf(adopted, now) });
    return adopted;
  }

  function handleFailure(error: unknown, isBackground: boolean): AwsCredentialIdentity {
    stats.sourceFailures += 1;
    const now = clock.now();
    const described = describeError(error, secrets());
    const h = held;
    if (h && now < h.expiresAt) {
      // Valid credentials in hand: serve them and try again later.
      nextAttemptAt = now + backoff();
      scheduleProactiveRefresh();
      emit({
        type: "refresh-failure",
        key,
        time: now,
        error: described,
        retryAt: nextAttemptAt,
        background: isBackground,
      });
      if (!isBackground) {
        stats.staleServed += 1;
        emit({
          type: "stale-served",
          key,
          time: now,
          accessKeyId: truncateAccessKeyId(h.record.accessKeyId),
          ...(h.record.expiration !== undefined && { expiration: h.record.expiration }),
          error: described,
        });
      }
      logger?.warn?.(
        `${LOG_PREFIX} refreshing "${key}" failed (${described.message}); serving credentials valid until ` +
          `${new Date(h.expiresAt).toISOString()}, next try at ${new Date(nextAttemptAt).toISOString()}`,
      );
      return h.identity;
    }
    emit({ type: "refresh-failure", key, time: now, error: described, background: isBackground });
    if (h && staleIfError) {
      // The SDK's static stability: keep expired credentials for 5–10 min more.
      const until = now + 5 * MINUTE + Math.floor(random() * 5 * MINUTE);
      const extended = hold(h.record, until);
      nextAttemptAt = until;
      stats.extended += 1;
      emit({
        type: "extended",
        key,
        time: now,
        accessKeyId: truncateAccessKeyId(h.record.accessKeyId),
        expiration: until,
        error: described,
      });
      logger?.warn?.(
        "Attempting credential expiration extension due to a credential service availability issue. " +
          `A refresh of these credentials will be attempted after ${new Date(until).toISOString()}. ` +
          `(${LOG_PREFIX}, key "${key}": ${described.message})`,
      );
      return extended.identity;
    }
    logger?.warn?.(`${LOG_PREFIX} refreshing "${key}" failed: ${described.message}`);
    if (h) {
      // Expired credentials and a failing source: until the backoff passes, callers get
      // this error at once instead of each asking the (likely throttled) source again.
      nextAttemptAt = now + backoff();
      lastFailure = new CredentialsUnavailableError(
        `credcache: the source failed and the cached credentials for "${key}" expired at ` +
          `${new Date(h.expiresAt).toISOString()} (${described.message}). Enable staleIfError to keep serving them.`,
        { cause: error },
      );
      throw lastFailure;
    }
    throw error;
  }

  // ---- refresh paths ----

  /** Refresh before answering: lock, wait for another holder, double-check, fetch. */
  function refreshBlocking(options: CachedProviderOptions | undefined, reason: RefreshReason) {
    if (blocking) return blocking;
    const run = (async (): Promise<AwsCredentialIdentity> => {
      const force = reason === "force";
      let now = clock.now();
      // After a miss the store was read a moment ago; after a failed read it is broken.
      if (!force && reason !== "miss" && !storeFailing) {
        const adopted = adoptIfSpare(await readStore(), true);
        if (adopted) return adopted.identity;
      }
      let lock = await tryLock();
      if (!lock) {
        stats.lockWaits += 1;
        const waitStarted = clock.now();
        const realStart = Date.now();
        emit({ type: "lock-busy", key, time: waitStarted });
        // Another process is refreshing: re-read the store until it writes, or the lock frees.
        while (!lock) {
          await new Promise((r) => setTimeout(r, lockPollMs * (0.5 + random())));
          const adopted = adoptIfSpare(await readStore(), true);
          now = clock.now();
          if (adopted) {
            emit({
              type: "lock-waited",
              key,
              time: now,
              waitedMs: Date.now() - realStart,
              outcome: "adopted",
            });
            return adopted.identity;
          }
          lock = await tryLock();
          if (lock) {
            emit({
              type: "lock-waited",
              key,
              time: now,
              waitedMs: Date.now() - realStart,
              outcome: "acquired",
            });
            break;
          }
          if (Date.now() - realStart >= lockWaitMs) {
            emit({
              type: "lock-waited",
              key,
              time: now,
              waitedMs: Date.now() - realStart,
              outcome: "timeout",
            });
            logger?.warn?.(
              `${LOG_PREFIX} waited ${lockWaitMs} ms for the refresh lock on "${key}"; fetching anyway`,
            );
            lock = NO_LOCK;
          }
        }
      }
      try {
        if (!force && lock !== NO_LOCK && !storeFailing) {
          // Double check: the previous holder may have written fresh credentials.
          const adopted = adoptIfSpare(await readStore(), true);
          if (adopted) return adopted.identity;
        }
        try {
          return (await fetchFromSource(options, reason, false)).identity;
        } catch (error) {
          return handleFailure(error, false);
        }
      } finally {
        await release(lock);
      }
    })();
    blocking = run;
    const clear = () => {
      if (blocking === run) blocking = undefined;
    };
    run.then(clear, clear);
    return run;
  }

  /** Serve now, refresh behind: try-lock only, never waits. */
  function startBackground(reason: RefreshReason): void {
    if (background || blocking || closed) return;
    if (held && clock.now() < attemptAt(held)) return;
    const run = (async () => {
      // Someone else may have refreshed already, or asked the source a moment ago.
      if (adoptIfSpare(await readStore(), false)) return;
      const lock = await tryLock();
      if (!lock) {
        // Someone else is refreshing; look again after a pause.
        nextAttemptAt = clock.now() + retryBaseMs * (0.5 + random() * 0.5);
        scheduleProactiveRefresh();
        return;
      }
      try {
        // Double check under the lock: the previous holder may have just written.
        if (lock !== NO_LOCK && adoptIfSpare(await readStore(), false)) return;
        try {
          await fetchFromSource(undefined, reason, true);
        } catch (error) {
          handleFailure(error, true);
        }
      } finally {
        await release(lock);
      }
    })().catch((error) => {
      // Nothing above should throw; if it does, the foreground path still works.
      logger?.error?.(
        `${LOG_PREFIX} background refresh of "${key}" failed: ${describeError(error, secrets()).message}`,
      );
    });
    background = run;
    run.finally(() => {
      if (background === run) background = undefined;
    });
  }

  async function resolveSlow(options: CachedProviderOptions | undefined): Promise<AwsCredentialIdentity> {
    if (options?.forceRefresh) return refreshBlocking(options, "force");
    let h = held;
    let layer: "l1" | "l2" = "l1";
    if (!h) {
      if (blocking) return blocking;
      const stored = await readStore();
      const now = clock.now();
      if (stored && (stored.expiration ?? Number.POSITIVE_INFINITY) > now) {
        h = held && held.record.cachedAt > stored.cachedAt ? held : hold(stored);
        layer = "l2";
      } else if (stored && staleIfError) {
        // Expired, but kept for static stability: refresh now, and extend it only if the
        // source fails (a process started during an outage still gets credentials).
        hold(stored);
        return refreshBlocking(options, "expired");
      } else {
        stats.misses += 1;
        emit({ type: "miss", key, time: now });
        return refreshBlocking(options, "miss");
      }
    }
    const now = clock.now();
    const window = windowOf(h, now);
    switch (window) {
      case "fresh":
      case "advisory":
        if (layer === "l2") stats.hitsL2 += 1;
        else stats.hitsL1 += 1;
        if (onEvent) emit({ type: "hit", key, time: now, layer, window });
        if (window === "advisory") startBackground("advisory");
        return h.identity;
      case "mandatory":
        if (now < attemptAt(h) || h.extended) {
          // A recent attempt failed or returned this same set: serve it, it is still valid.
          if (layer === "l2") stats.hitsL2 += 1;
          else stats.hitsL1 += 1;
          if (onEvent) emit({ type: "hit", key, time: now, layer, window });
          return h.identity;
        }
        return refreshBlocking(options, "mandatory");
      default:
        if (lastFailure && now < nextAttemptAt) throw lastFailure;
        return refreshBlocking(options, "expired");
    }
  }

  const provider = (async (options?: CachedProviderOptions) => {
    // Hot path: fresh credentials in L1 cost one clock read.
    const h = held;
    if (h !== undefined && (options === undefined || !options.forceRefresh)) {
      const now = clock.now();
      if (now < h.freshUntil) {
        stats.hitsL1 += 1;
        if (onEvent) emit({ type: "hit", key, time: now, layer: "l1", window: "fresh" });
        return h.identity;
      }
    }
    return resolveSlow(options);
  }) as CachedCredentialProvider;

  provider.invalidate = async () => {
    const dropped = held?.record.accessKeyId;
    held = undefined;
    nextAttemptAt = 0;
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (!cache) return;
    const stored = await readStore();
    if (stored && dropped !== undefined && stored.accessKeyId !== dropped) return;
    try {
      await guarded("remove", () => cache.remove(key));
    } catch (error) {
      reportCacheError("remove", error);
    }
  };
  provider.stats = () => ({ ...stats });
  provider.close = async () => {
    closed = true;
    if (timer) clearTimeout(timer);
    timer = undefined;
    // A source that never answers must not hang a shutdown: after lockTtlMs the lock is
    // free for others anyway.
    let wake: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([background, blocking]),
      new Promise((resolve) => {
        wake = setTimeout(resolve, lockTtlMs);
        wake.unref?.();
      }),
    ]);
    clearTimeout(wake);
  };
  // Credentials live in the closure, which util.inspect never shows.
  return provider;
}
