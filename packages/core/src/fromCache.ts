import type { AwsCredentialIdentity, AwsCredentialIdentityProvider, Logger } from "@smithy/types";
import { DEFAULT_CACHE_KEY, REFRESH_DEFAULTS, SDK_REFRESH_WINDOWS } from "./defaults.js";
import { CacheConfigError, CredentialsUnavailableError } from "./errors.js";
import { GuardedStore, type StoreSession } from "./guardedStore.js";
import {
  backoffMs,
  decide,
  NO_SHARED_STATE,
  type RefreshPolicy,
  type SharedView,
  supersedes,
  type Timeline,
  timelineOf,
  windowAt,
} from "./policy.js";
import { toIdentity, toRecord } from "./record.js";
import { describeError, truncateAccessKeyId } from "./redact.js";
import { holderIsDead, newAttemptMark, type RefreshState, viewOf } from "./refreshState.js";
import type {
  CacheEvent,
  CacheLock,
  CacheRecord,
  CacheStats,
  Clock,
  CredentialCache,
  EventError,
  RefreshReason,
} from "./types.js";

export { DEFAULT_CACHE_KEY };

const MINUTE = 60_000;
/** setTimeout's longest delay; beyond it the proactive refresh timer is not set. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const LOG_PREFIX = "@credcache/core - fromCache";

/** Options of {@link fromCache}. Defaults live in {@link REFRESH_DEFAULTS}. */
export interface FromCacheInit {
  /** Where credentials come from on a miss: any SDK v3 credential provider. */
  provider: AwsCredentialIdentityProvider;
  /** The shared (L2) store. Without one, `fromCache` is an in-process memo with refresh windows. */
  cache?: CredentialCache;
  /**
   * The store key. Two principals must never share one: the presets build keys from
   * everything that changes the credentials.
   * @default "aws_cached_credentials" (the PHP SDK's key)
   */
  key?: string;
  /** A label stored with the record (`imds`, `sts`, ...), shown by `credcache inspect`. */
  source?: string;
  /**
   * Start refreshing behind when this much time is left before expiry. Each process picks
   * its own point between this and `mandatoryRefreshMs`, so a fleet does not try at the
   * same second. Callers keep being served the valid set meanwhile.
   * @default 900_000 (15 min)
   */
  advisoryRefreshMs?: number;
  /**
   * The latest point at which every caller starts a refresh behind. Keep it above the SDK
   * client's own 5 min window, or the client calls back on every request near expiry.
   * @default 600_000 (10 min)
   */
  mandatoryRefreshMs?: number;
  /**
   * The caller's hard floor: a set with less than this left is treated as expired, and
   * the caller waits for a refresh (the CLI uses 6 min: less is useless to an SDK).
   * @default 0
   */
  minValidityMs?: number;
  /**
   * When the source fails and the credentials in hand have expired, serve them for
   * another 5–10 min with a warning and try again after that (the SDK's static
   * stability). Such a set is never written to the store as fresh. Off by default; on in
   * the instance-metadata preset.
   * @default false
   */
  staleIfError?: boolean;
  /**
   * How long one refresh attempt holds the cross-process lock and shows as in progress.
   * A holder that dies is taken over after this, or at once when it ran on this machine.
   * @default 10_000
   */
  lockTtlMs?: number;
  /**
   * How long a caller without a valid set waits for a refresh by anyone (re-reading the
   * store meanwhile) before it fails or, when no live attempt is visible, fetches itself.
   * @default lockTtlMs + 2_000
   */
  lockWaitMs?: number;
  /**
   * Poll interval while waiting for another process's attempt (jittered ±50%).
   * @default 50
   */
  lockPollMs?: number;
  /**
   * Longest time any single store call may take before it counts as failed.
   * @default 1_000
   */
  cacheTimeoutMs?: number;
  /**
   * First backoff step after a failed attempt; doubles per consecutive failure up to
   * `retryMaxMs`, with jitter (50–100% of the step). The backoff is shared through the
   * store: one schedule per key per store, whatever the number of processes.
   * @default 5_000
   */
  retryBaseMs?: number;
  /** @default 60_000 */
  retryMaxMs?: number;
  /**
   * Extra tries the lock holder makes within its lease, with jitter, on a cold start (no
   * set in hand at all: a herd on a starved host). Every other attempt tries once, so an
   * outage sees one try per step of the shared backoff.
   * @default 1
   */
  holderRetries?: number;
  /**
   * How long credentials without an expiration (long-term keys) are kept before they are
   * fetched again, so a rotated key reaches every client.
   * @default 900_000 (15 min)
   */
  noExpirationTtlMs?: number;
  /**
   * Write credentials without an expiration to a store whose `scope` is not `"process"`
   * or `"host"` (Redis, a custom store). Off: long-term keys do not travel off the host.
   * @default false
   */
  shareLongTermCredentials?: boolean;
  /**
   * Refresh behind on a timer at this process's advisory point, so a long-running process
   * never waits for a fetch. Timers are `unref`'d.
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
   * Drops the cached credentials from L1 and the store, and the shared failure count.
   * The store entry is removed only if it still holds the same access key id, so a
   * racing refresh by another process is not undone.
   */
  invalidate(): Promise<void>;
  /** Counters since creation. */
  stats(): CacheStats;
  /**
   * Cancels the proactive timer; later calls are answered from what is held or stored
   * and never start a refresh. Resolves when a refresh already under way has written its
   * result and released its lock, so a short-lived process can close its store after it
   * and leave no lock behind; waits at most `lockTtlMs`.
   */
  close(): Promise<void>;
}

/** A set held in L1 with its timeline. */
interface Held {
  record: CacheRecord;
  identity: AwsCredentialIdentity;
  t: Timeline;
  /** Not yet served since it was read from the store: the next hit counts as L2. */
  fromStore: boolean;
}

/** The outcome of one attempt when it did not produce credentials. */
type NoAttempt = "busy" | "backoff";

function checkMs(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw new CacheConfigError(
      `fromCache: ${name} must be a non-negative number of milliseconds, got ${value}`,
    );
  }
  return value;
}

/** A pause inside a resolution. Not unref'd: a caller is waiting on it, so the process must stay up. */
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Settings after defaults and validation. */
interface Settings {
  key: string;
  policy: RefreshPolicy;
  lockTtlMs: number;
  lockWaitMs: number;
  lockPollMs: number;
  holderRetries: number;
  staleIfError: boolean;
  proactive: boolean;
  shareLongTerm: boolean;
}

function settle(init: FromCacheInit, random: () => number): Settings {
  if (typeof init?.provider !== "function") {
    throw new CacheConfigError("fromCache: `provider` must be a credential provider function");
  }
  const key = init.key ?? DEFAULT_CACHE_KEY;
  if (typeof key !== "string" || key.length === 0) {
    throw new CacheConfigError("fromCache: `key` must be a non-empty string");
  }
  const d = REFRESH_DEFAULTS;
  const advisoryMs = checkMs("advisoryRefreshMs", init.advisoryRefreshMs, d.advisoryRefreshMs);
  const mandatoryMs = checkMs("mandatoryRefreshMs", init.mandatoryRefreshMs, d.mandatoryRefreshMs);
  if (mandatoryMs > advisoryMs) {
    throw new CacheConfigError(
      `fromCache: mandatoryRefreshMs (${mandatoryMs}) must not exceed advisoryRefreshMs (${advisoryMs})`,
    );
  }
  const lockTtlMs = checkMs("lockTtlMs", init.lockTtlMs, d.lockTtlMs);
  const holderRetries = checkMs("holderRetries", init.holderRetries, d.holderRetries);
  return {
    key,
    policy: {
      advisoryMs,
      mandatoryMs,
      // (1 - random) is in (0, 1], so the point lies in (mandatory, advisory].
      advisoryPointMs: mandatoryMs + (1 - random()) * (advisoryMs - mandatoryMs),
      minValidityMs: checkMs("minValidityMs", init.minValidityMs, d.minValidityMs),
      retryBaseMs: checkMs("retryBaseMs", init.retryBaseMs, d.retryBaseMs),
      retryMaxMs: checkMs("retryMaxMs", init.retryMaxMs, d.retryMaxMs),
      noExpirationTtlMs: checkMs("noExpirationTtlMs", init.noExpirationTtlMs, d.noExpirationTtlMs),
    },
    lockTtlMs,
    lockWaitMs: checkMs("lockWaitMs", init.lockWaitMs, lockTtlMs + 2_000),
    lockPollMs: Math.max(1, checkMs("lockPollMs", init.lockPollMs, d.lockPollMs)),
    holderRetries: Math.floor(holderRetries),
    staleIfError: init.staleIfError ?? false,
    proactive: init.proactiveRefresh ?? true,
    shareLongTerm: init.shareLongTermCredentials === true,
  };
}

/**
 * Wraps a credential provider with an in-process memo (L1) and a shared store (L2)
 * that every process on a host, or every host in a fleet, can read. Credentials are
 * fetched once, ahead of expiry, by one process at a time under the store's lock, with
 * the outcome (in progress, failed and when to try again) shared through the store.
 * Nobody waits while a valid set exists, and good credentials keep being served while
 * the source is slow or down. A failing store never fails a resolution: it degrades to
 * "no L2" for that call and raises a `cache-error` event.
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
  const refresher = new Refresher(init);
  const provider = ((options?: CachedProviderOptions) => refresher.get(options)) as CachedCredentialProvider;
  provider.invalidate = () => refresher.invalidate();
  provider.stats = () => ({ ...refresher.stats });
  provider.close = () => refresher.close();
  // Credentials live in the refresher, which the provider function does not expose to
  // util.inspect or JSON.stringify.
  return provider;
}

/** The orchestrator: asks {@link decide}, then does it against the source and the store. */
class Refresher {
  readonly stats: CacheStats = {
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
  private readonly s: Settings;
  private readonly source: AwsCredentialIdentityProvider;
  private readonly store: GuardedStore | undefined;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly logger: Logger | undefined;
  private readonly onEvent: ((event: CacheEvent) => void) | undefined;
  private readonly sourceLabel: string | undefined;

  private held: Held | undefined;
  /** The shared refresh state as last read (or written) by this process. */
  private shared: SharedView = NO_SHARED_STATE;
  /** The last error the shared state recorded, for events about the set still served. */
  private sharedError: EventError | undefined;
  /** The one wait for a refresh that callers without a valid set share. */
  private waiting: Promise<AwsCredentialIdentity> | undefined;
  /** The one refresh behind a valid set. */
  private behind: Promise<void> | undefined;
  /** The one read of the store that cold callers share. */
  private loading: Promise<CacheRecord | undefined> | undefined;
  /** No refresh behind before then after finding the lock busy (local, not shared). */
  private behindNotBefore = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Secrets of the last few credential sets, scrubbed from every error text we report. */
  private readonly recentSecrets: string[] = [];

  constructor(init: FromCacheInit) {
    this.random = init.random ?? Math.random;
    this.s = settle(init, this.random);
    this.source = init.provider;
    this.clock = init.clock ?? Date;
    this.logger = init.logger;
    this.onEvent = init.onEvent;
    this.sourceLabel = init.source;
    this.store =
      init.cache &&
      new GuardedStore(
        init.cache,
        checkMs("cacheTimeoutMs", init.cacheTimeoutMs, REFRESH_DEFAULTS.cacheTimeoutMs),
        {
          key: this.s.key,
          stats: this.stats,
          logger: this.logger,
          logPrefix: LOG_PREFIX,
          now: () => this.clock.now(),
          emit: (event) => this.emit(event),
          secrets: () => this.recentSecrets,
        },
      );
    if (init.key === undefined && init.cache && init.cache.scope !== "process") {
      this.logger?.warn?.(
        `${LOG_PREFIX} no key given: using "${DEFAULT_CACHE_KEY}" on a store other processes read; ` +
          "two providers with different credentials would share it. Pass a key, or use a preset",
      );
    }
    const { mandatoryMs } = this.s.policy;
    if (mandatoryMs <= SDK_REFRESH_WINDOWS.javascriptV3Ms && mandatoryMs !== 0) {
      this.logger?.warn?.(
        `${LOG_PREFIX} mandatoryRefreshMs (${mandatoryMs}) is not above the SDK client's 5 min window; ` +
          "the client may call the provider on every request near expiry",
      );
    }
  }

  // ---- answering ----

  get(options: CachedProviderOptions | undefined): Promise<AwsCredentialIdentity> {
    // Hot path: fresh credentials in L1 cost one clock read.
    const h = this.held;
    if (h !== undefined && !h.fromStore && (options === undefined || !options.forceRefresh)) {
      const now = this.clock.now();
      if (now < h.t.freshUntil) {
        this.stats.hitsL1 += 1;
        if (this.onEvent)
          this.emit({ type: "hit", key: this.s.key, time: now, layer: "l1", window: "fresh" });
        return Promise.resolve(h.identity);
      }
    }
    return this.resolve(options);
  }

  private async resolve(options: CachedProviderOptions | undefined): Promise<AwsCredentialIdentity> {
    // Once a store call fails, the rest of this resolution goes on without the store.
    const session: StoreSession = { down: false };
    if (options?.forceRefresh) {
      if (this.closed) return this.answerClosed();
      return this.waitForRefresh(options, "force", session);
    }
    if (!this.held) {
      if (this.waiting) return this.waiting;
      if (this.store) {
        // Into L1 whether valid or expired: an expired record feeds static stability.
        this.loading ??= this.store.readRecord(session);
        const stored = await this.loading;
        this.loading = undefined;
        if (stored && !this.held) this.hold(stored, true);
      }
    }
    const h = this.held;
    const now = this.clock.now();
    const decision = decide(now, h?.t, this.shared, this.s.lockWaitMs);
    if (h && (decision === "serve" || decision === "serve-and-refresh")) {
      this.countHit(h, now);
      if (decision === "serve-and-refresh" && !this.closed) {
        this.refreshBehind(windowAt(h.t, now) === "mandatory" ? "mandatory" : "advisory");
      }
      return h.identity;
    }
    if (this.closed) return this.answerClosed();
    if (!h) {
      this.stats.misses += 1;
      this.emit({ type: "miss", key: this.s.key, time: now });
    }
    return this.waitForRefresh(options, h ? "expired" : "miss", session);
  }

  private countHit(h: Held, now: number): void {
    const window = windowAt(h.t, now);
    const layer = h.fromStore ? "l2" : "l1";
    h.fromStore = false;
    if (layer === "l2") this.stats.hitsL2 += 1;
    else this.stats.hitsL1 += 1;
    if (this.onEvent) this.emit({ type: "hit", key: this.s.key, time: now, layer, window });
    if (window === "mandatory" && this.shared.failures > 0) {
      // The set is being served because refreshing it keeps failing: say so.
      this.staleServed(h, now, this.sharedError ?? { name: "Error", message: "the last refresh failed" });
    }
  }

  private staleServed(h: Held, now: number, error: EventError): void {
    this.stats.staleServed += 1;
    this.emit({
      type: "stale-served",
      key: this.s.key,
      time: now,
      accessKeyId: truncateAccessKeyId(h.record.accessKeyId),
      ...(h.record.expiration !== undefined && { expiration: h.record.expiration }),
      error,
    });
  }

  private answerClosed(): Promise<AwsCredentialIdentity> {
    return Promise.reject(
      new CredentialsUnavailableError(
        `credcache: the provider for "${this.s.key}" is closed and holds no valid credentials`,
      ),
    );
  }

  // ---- holding ----

  private hold(record: CacheRecord, fromStore: boolean, extendedUntil?: number): Held {
    for (const secret of [record.secretAccessKey, record.sessionToken]) {
      if (secret && !this.recentSecrets.includes(secret)) this.recentSecrets.push(secret);
    }
    if (this.recentSecrets.length > 8) this.recentSecrets.splice(0, this.recentSecrets.length - 8);
    const held: Held = {
      record,
      identity: toIdentity(extendedUntil === undefined ? record : { ...record, expiration: extendedUntil }),
      t: timelineOf(record, this.s.policy, extendedUntil),
      fromStore,
    };
    this.held = held;
    this.schedule();
    return held;
  }

  /**
   * Holds the stored record when it makes a fetch pointless for this caller: valid above
   * the floor and fresh, or fetched so recently that the source has nothing newer. Never
   * replaces a set in hand that expires later.
   */
  private async adoptFromStore(session: StoreSession, blocking: boolean): Promise<Held | undefined> {
    if (!this.store) return undefined;
    const stored = await this.store.readRecord(session);
    if (!stored) return undefined;
    const now = this.clock.now();
    const t = timelineOf(stored, this.s.policy);
    if (now >= t.floorAt || now >= t.expiresAt) return undefined;
    const spares = blocking
      ? now < t.mandatoryAt || now < t.recheckAt
      : now < t.freshUntil || now < t.recheckAt;
    if (!spares) return undefined;
    const h = this.held;
    if (h && !h.t.extended && now < h.t.expiresAt && supersedes(h.record, stored)) return undefined;
    const adopted = this.hold(stored, false);
    this.stats.hitsL2 += 1;
    if (this.onEvent)
      this.emit({ type: "hit", key: this.s.key, time: now, layer: "l2", window: windowAt(t, now) });
    return adopted;
  }

  // ---- refreshing ----

  /** Serve now, refresh behind: one attempt, try-lock only, never waits. */
  private refreshBehind(reason: RefreshReason): void {
    if (this.behind || this.waiting || this.closed) return;
    if (this.clock.now() < this.behindNotBefore) return;
    const run = (async () => {
      const session: StoreSession = { down: false };
      if (await this.adoptFromStore(session, false)) return;
      let outcome: Held | NoAttempt;
      try {
        outcome = await this.attempt(undefined, reason, session, false);
      } catch {
        return; // a failed attempt is shared and reported (refresh-failure, a warning) by attempt()
      }
      if (outcome === "busy") {
        this.behindNotBefore = this.clock.now() + this.s.policy.retryBaseMs * (0.5 + this.random() * 0.5);
        this.schedule();
      }
    })().catch((error) => {
      // attempt() reports its own failures; this only catches the unexpected.
      this.logger?.error?.(
        `${LOG_PREFIX} background refresh of "${this.s.key}" failed: ${describeError(error, this.recentSecrets).message}`,
      );
    });
    this.behind = run;
    run.finally(() => {
      if (this.behind === run) this.behind = undefined;
    });
  }

  /** Callers without a valid set share one wait: for a peer's result, or for their own attempt. */
  private waitForRefresh(
    options: CachedProviderOptions | undefined,
    reason: RefreshReason,
    session: StoreSession,
  ) {
    if (this.waiting) return this.waiting;
    const run = this.waitLoop(options, reason, session);
    this.waiting = run;
    const clear = () => {
      if (this.waiting === run) this.waiting = undefined;
    };
    run.then(clear, clear);
    return run;
  }

  private async waitLoop(
    options: CachedProviderOptions | undefined,
    reason: RefreshReason,
    session: StoreSession,
  ): Promise<AwsCredentialIdentity> {
    const force = reason === "force";
    const key = this.s.key;
    const startedReal = Date.now();
    const startedClock = this.clock.now();
    const outOfPatience = () =>
      Date.now() - startedReal >= this.s.lockWaitMs || this.clock.now() - startedClock >= this.s.lockWaitMs;
    let waited = false;
    const waitedEvent = (outcome: "adopted" | "acquired" | "timeout") => {
      if (waited) {
        this.emit({
          type: "lock-waited",
          key,
          time: this.clock.now(),
          waitedMs: Date.now() - startedReal,
          outcome,
        });
      }
    };
    // A refresh behind in this process is an attempt like any other: wait for it first.
    if (this.behind) await this.behind;
    // After a miss the store was read a moment ago.
    let readRecord = !force && reason !== "miss";
    for (;;) {
      if (this.closed) return this.answerClosed();
      if (readRecord) {
        const adopted = await this.adoptFromStore(session, true);
        if (adopted) {
          waitedEvent("adopted");
          return adopted.identity;
        }
      }
      readRecord = true;
      const state = this.store ? await this.store.readState(session) : undefined;
      if (this.store) this.noteShared(state);
      const now = this.clock.now();
      const remaining = this.s.lockWaitMs - Math.max(Date.now() - startedReal, now - startedClock);
      if (!force) {
        // Only a process that has no set at all (a cold start, maybe one of a herd on a
        // starved host) waits out a short backoff for the next attempt; one whose set
        // expired is answered at once: extended with staleIfError, or the shared error.
        const patience = this.held ? 0 : Math.max(0, remaining);
        const decision = decide(now, undefined, this.shared, patience);
        if (decision === "fail") return this.failFast(state);
        if (decision === "wait" && state?.attempt && holderIsDead(state.attempt)) {
          // The holder died on this machine: one waiter takes over now, not at lease end.
          const takeover = await this.store?.lock(
            `${key}#takeover:${state.attempt.id}`,
            this.s.lockTtlMs,
            session,
          );
          if (takeover && "held" in takeover)
            return this.attemptOrThrow(options, reason, session, takeover.held);
        }
        if (decision === "wait" || (decision === "refresh" && now < this.shared.nextAttemptAt)) {
          if (!waited) this.noteWaiting();
          waited = true;
          // A live attempt ends by its lease at the latest: wait for it, however starved the
          // host. Only a backoff is measured against this caller's patience.
          if (decision !== "wait" && outOfPatience()) return this.failFast(state);
          await sleep(this.pollDelay(this.shared.nextAttemptAt - now));
          continue;
        }
      }
      const lock = this.store
        ? await this.store.lock(key, this.s.lockTtlMs, session)
        : { unavailable: true as const };
      if ("busy" in lock) {
        if (!waited) this.noteWaiting();
        waited = true;
        if (outOfPatience() && now >= this.shared.attemptUntil) {
          // A lock held with no attempt visible (a peer without shared state, or a store
          // that cannot keep it): give up waiting and fetch, as the SDK alone would.
          waitedEvent("timeout");
          this.logger?.warn?.(
            `${LOG_PREFIX} waited ${this.s.lockWaitMs} ms for the refresh lock on "${key}" with no attempt visible; fetching`,
          );
          return this.attemptOrThrow(options, reason, session, undefined);
        }
        await sleep(this.pollDelay(0));
        continue;
      }
      waitedEvent("acquired");
      return this.attemptOrThrow(options, reason, session, "held" in lock ? lock.held : undefined, force);
    }
  }

  private noteWaiting(): void {
    this.stats.lockWaits += 1;
    this.emit({ type: "lock-busy", key: this.s.key, time: this.clock.now() });
  }

  private pollDelay(untilNext: number): number {
    const poll = this.s.lockPollMs * (0.5 + this.random());
    return untilNext > 0 ? Math.min(Math.max(poll, untilNext), 250) : poll;
  }

  private noteShared(state: RefreshState | undefined): void {
    this.shared = viewOf(state);
    if (state?.error) this.sharedError = state.error;
  }

  /** One attempt for a caller without a valid set: credentials, or the reason there are none. */
  private async attemptOrThrow(
    options: CachedProviderOptions | undefined,
    reason: RefreshReason,
    session: StoreSession,
    lock: CacheLock | undefined,
    force = false,
  ): Promise<AwsCredentialIdentity> {
    try {
      const outcome = await this.attempt(options, reason, session, true, lock ?? null, force);
      if (typeof outcome !== "string") return outcome.identity;
      // Someone failed or is trying right now; what we have is all there is.
      return this.failFast(undefined);
    } catch (error) {
      return this.afterFailure(error);
    }
  }

  /**
   * One careful attempt: under the lock (taken here unless given), double-check the store
   * and the shared state, mark the attempt as live, fetch (with retries within the lease
   * when `blocking`), write the result fenced, and share the outcome. Throws the source's
   * error when the attempt failed and no peer succeeded meanwhile.
   */
  private async attempt(
    options: CachedProviderOptions | undefined,
    reason: RefreshReason,
    session: StoreSession,
    blocking: boolean,
    given?: CacheLock | null,
    force = false,
  ): Promise<Held | NoAttempt> {
    const store = this.store;
    let lock: CacheLock | undefined = given ?? undefined;
    if (given === undefined) {
      if (store) this.noteShared(await store.readState(session));
      const now = this.clock.now();
      if (now < this.shared.attemptUntil) return "busy";
      if (now < this.shared.nextAttemptAt) return "backoff";
      const outcome = store ? await store.lock(this.s.key, this.s.lockTtlMs, session) : undefined;
      if (outcome && "busy" in outcome) return "busy";
      if (outcome && "held" in outcome) lock = outcome.held;
    }
    try {
      if (store && lock && !force) {
        // Double check under the lock: the previous holder may have just written.
        const adopted = await this.adoptFromStore(session, blocking);
        if (adopted) return adopted;
        const state = await store.readState(session);
        this.noteShared(state);
        if (this.clock.now() < this.shared.nextAttemptAt) return "backoff";
      }
      const failures = this.shared.failures;
      const started = this.clock.now();
      const mark = newAttemptMark(started + this.s.lockTtlMs);
      await this.writeShared(
        { v: 1, kind: "refresh-state", failures, nextAttemptAt: 0, attempt: mark },
        session,
      );
      // Extra tries only on a cold start, when nobody in this process has had a set (a
      // herd on a starved host); an outage after expiry keeps to one try per backoff step.
      const tries = blocking && !this.held ? 1 + this.s.holderRetries : 1;
      let lastError: unknown;
      for (let i = 0; i < tries; i++) {
        const tryStarted = this.clock.now();
        try {
          const held = await this.fetch(options, reason, !blocking, session);
          if (held.t.extended) {
            await this.shareFailure(failures, new Error("the source returned expired credentials"), session);
          } else {
            await this.clearShared(session);
          }
          return held;
        } catch (error) {
          lastError = error;
          this.stats.sourceFailures += 1;
          const took = this.clock.now() - tryStarted;
          const pause = Math.min(1_000, this.s.lockTtlMs / 10) * (0.5 + this.random() * 0.5);
          // Another try only if it fits in the lease, judged by how long this one took:
          // past the lease another process may already be trying.
          if (i + 1 >= tries || this.clock.now() + took + pause >= started + this.s.lockTtlMs) break;
          await sleep(pause);
        }
      }
      // Before failing, re-read the store: a peer may have succeeded.
      const adopted = await this.adoptFromStore(session, blocking);
      if (adopted) {
        // A peer's success ends the run of failures as our own would.
        await this.clearShared(session);
        return adopted;
      }
      await this.shareFailure(failures, lastError, session);
      throw lastError;
    } finally {
      if (lock) await store?.release(lock);
    }
  }

  /** After a success: no attempt live, no failures, for every process. */
  private async clearShared(session: StoreSession): Promise<void> {
    if (this.store) await this.store.remove(this.store.stateKey, session);
    this.shared = NO_SHARED_STATE;
    this.sharedError = undefined;
    // The timer was set while our own attempt mark was live: set it again without.
    this.schedule();
  }

  private async writeShared(state: RefreshState, session: StoreSession): Promise<void> {
    this.noteShared(state);
    if (!this.store) return;
    // The state outlives the longest backoff and lease, then disappears by itself.
    const ttl = Math.ceil((Math.max(this.s.policy.retryMaxMs, this.s.lockTtlMs) * 2 + 60_000) / 1000);
    await this.store.writeState(state, ttl, session);
  }

  /** Records a failed attempt for every process: the next one waits out the shared backoff. */
  private async shareFailure(failuresBefore: number, error: unknown, session: StoreSession): Promise<void> {
    const failures = failuresBefore + 1;
    const now = this.clock.now();
    const nextAttemptAt = now + backoffMs(failures, this.s.policy, this.random);
    const described = describeError(error, this.recentSecrets);
    await this.writeShared(
      { v: 1, kind: "refresh-state", failures, nextAttemptAt, error: described },
      session,
    );
    this.schedule();
    const h = this.held;
    const valid = h && now < h.t.expiresAt;
    this.emit({
      type: "refresh-failure",
      key: this.s.key,
      time: now,
      error: described,
      retryAt: nextAttemptAt,
      background: Boolean(valid),
    });
    this.logger?.warn?.(
      `${LOG_PREFIX} refreshing "${this.s.key}" failed (${described.message}); ` +
        (valid ? `serving credentials valid until ${new Date(h.t.expiresAt).toISOString()}, ` : "") +
        `next attempt (any process) at ${new Date(nextAttemptAt).toISOString()}`,
    );
  }

  /** Asks the source once; holds and writes (fenced) what it returns. */
  private async fetch(
    options: CachedProviderOptions | undefined,
    reason: RefreshReason,
    background: boolean,
    session: StoreSession,
  ): Promise<Held> {
    const key = this.s.key;
    const started = this.clock.now();
    this.emit({ type: "refresh-start", key, time: started, reason, background });
    this.logger?.debug?.(`${LOG_PREFIX} fetching credentials for "${key}" (${reason})`);
    this.stats.sourceCalls += 1;
    const { forceRefresh: _ignored, ...identityProperties } = options ?? {};
    const identity = await this.source(identityProperties);
    const now = this.clock.now();
    if (
      !identity ||
      typeof identity.accessKeyId !== "string" ||
      typeof identity.secretAccessKey !== "string"
    ) {
      throw new CredentialsUnavailableError("credcache: the source returned no credentials");
    }
    const expiration = identity.expiration?.getTime();
    const original = (identity as { originalExpiration?: Date }).originalExpiration?.getTime();
    if (expiration !== undefined && original !== undefined && original <= now && expiration > now) {
      // The SDK's static stability extended an expired set: serve it as such, never store it.
      return this.extend(
        toRecord({ ...identity, expiration: new Date(original) }, now, this.sourceLabel, key),
        expiration,
        {
          name: "CredentialsExtended",
          message: `the source returned credentials that expired at ${new Date(original).toISOString()}`,
        },
      );
    }
    if (expiration !== undefined && !(expiration > now)) {
      throw new CredentialsUnavailableError(
        `credcache: the source returned credentials that expired at ${new Date(expiration).toISOString()}`,
      );
    }
    const record = toRecord(identity, now, this.sourceLabel, key);
    const held = await this.writeFenced(record, session);
    this.emit({
      type: "refresh-success",
      key,
      time: this.clock.now(),
      accessKeyId: truncateAccessKeyId(held.record.accessKeyId),
      ...(held.record.expiration !== undefined && { expiration: held.record.expiration }),
      durationMs: this.clock.now() - started,
    });
    return held;
  }

  /**
   * Writes a fetched set unless the store holds one that supersedes it (a later
   * expiration, or the same set cached later): a holder that was paused past its lease
   * never replaces a successor's newer set. Read-then-write: a store with no atomic
   * compare leaves a window of one store round trip, which a lease keeps rare.
   */
  private async writeFenced(record: CacheRecord, session: StoreSession): Promise<Held> {
    const store = this.store;
    if (store) {
      const stored = await store.readRecord(session);
      // Only a set still valid can fence: an expired one (or long-term keys past their
      // noExpirationTtlMs) is replaced whatever its expiration says.
      if (
        stored &&
        supersedes(stored, record) &&
        this.clock.now() < timelineOf(stored, this.s.policy).expiresAt
      ) {
        return this.hold(stored, false);
      }
    }
    const held = this.hold(record, false);
    if (!store) return held;
    if (record.expiration === undefined && !this.s.shareLongTerm) {
      const scope = store.scope;
      if (scope !== "process" && scope !== "host") return held;
    }
    // The record outlives its expiry (static stability for new processes); it is never
    // served as valid. Records without an expiration live `noExpirationTtlMs`.
    const until =
      record.expiration === undefined
        ? record.cachedAt + this.s.policy.noExpirationTtlMs
        : record.expiration + REFRESH_DEFAULTS.keepExpiredMs;
    await store.writeRecord(record, Math.max(1, Math.ceil((until - this.clock.now()) / 1000)), session);
    return held;
  }

  /** Static stability: keep `record` for `until` with the SDK's warning, in this process only. */
  private extend(record: CacheRecord, until: number, error: EventError): Held {
    const held = this.hold(record, false, until);
    this.stats.extended += 1;
    this.emit({
      type: "extended",
      key: this.s.key,
      time: this.clock.now(),
      accessKeyId: truncateAccessKeyId(record.accessKeyId),
      expiration: until,
      error,
    });
    this.logger?.warn?.(
      "Attempting credential expiration extension due to a credential service availability issue. " +
        `A refresh of these credentials will be attempted after ${new Date(until).toISOString()}. ` +
        `(${LOG_PREFIX}, key "${this.s.key}": ${error.message})`,
    );
    return held;
  }

  /** The attempt failed (this process asked): serve what is valid, extend, or throw. */
  private afterFailure(error: unknown): AwsCredentialIdentity {
    const now = this.clock.now();
    const h = this.held;
    const described = describeError(error, this.recentSecrets);
    if (h && now < h.t.expiresAt) {
      // A forced refresh or a caller below its floor: the set is still valid, hand it out.
      this.staleServed(h, now, described);
      return h.identity;
    }
    if (h && this.s.staleIfError) {
      return this.extend(h.record, now + 5 * MINUTE + Math.floor(this.random() * 5 * MINUTE), described)
        .identity;
    }
    if (h) {
      throw new CredentialsUnavailableError(
        `credcache: the source failed and the cached credentials for "${this.s.key}" expired at ` +
          `${new Date(h.t.expiresAt).toISOString()} (${described.message}). Enable staleIfError to keep serving them.`,
        { cause: error },
      );
    }
    throw error;
  }

  /**
   * No attempt can happen within the caller's patience (the shared backoff), or the one
   * that did failed: extend an expired set with staleIfError, serve a still-valid one,
   * or fail with the last shared error. The source is not asked.
   */
  private failFast(state: RefreshState | undefined): AwsCredentialIdentity {
    const error = state?.error ?? this.sharedError;
    const next = this.shared.nextAttemptAt;
    const failures = this.shared.failures;
    const cause = new CredentialsUnavailableError(
      (failures > 0
        ? `credcache: refreshing "${this.s.key}" failed ${failures} time(s) in a row`
        : `credcache: no refresh of "${this.s.key}" finished while this caller waited`) +
        (error ? ` (${error.message})` : "") +
        (next > this.clock.now()
          ? `; the next attempt (by any process) is after ${new Date(next).toISOString()}`
          : ""),
    );
    return this.afterFailure(cause);
  }

  // ---- timer, controls ----

  private schedule(minDelayMs = 0): void {
    if (!this.s.proactive || this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const h = this.held;
    if (!h || !Number.isFinite(h.t.expiresAt)) return;
    const at = Math.max(
      h.t.freshUntil,
      h.t.recheckAt,
      this.shared.nextAttemptAt,
      this.shared.attemptUntil,
      this.behindNotBefore,
    );
    const delay = at - this.clock.now();
    if (delay > MAX_TIMER_MS || at >= h.t.expiresAt) return;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        const now = this.clock.now();
        const held = this.held;
        if (held && decide(now, held.t, this.shared, 0) === "serve-and-refresh") {
          this.refreshBehind("advisory");
        } else if (!this.behind) {
          // Timers may fire a millisecond early, and an attempt elsewhere may be live: look
          // again later rather than never.
          this.schedule(this.s.lockPollMs);
        }
      },
      Math.max(minDelayMs, delay),
    );
    this.timer.unref?.();
  }

  async invalidate(): Promise<void> {
    const dropped = this.held?.record.accessKeyId;
    this.held = undefined;
    this.shared = NO_SHARED_STATE;
    this.sharedError = undefined;
    this.behindNotBefore = 0;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const store = this.store;
    if (!store) return;
    const session: StoreSession = { down: false };
    await store.remove(store.stateKey, session);
    const stored = await store.readRecord(session);
    if (stored && dropped !== undefined && stored.accessKeyId !== dropped) return;
    await store.remove(this.s.key, session);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    // A source that never answers must not hang a shutdown: after lockTtlMs the lock is
    // free for others anyway.
    let wake: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([this.behind, this.waiting]),
      new Promise((resolve) => {
        wake = setTimeout(resolve, this.s.lockTtlMs);
        wake.unref?.();
      }),
    ]);
    clearTimeout(wake);
  }

  private emit(event: CacheEvent): void {
    if (!this.onEvent) return;
    try {
      this.onEvent(event);
    } catch {
      // A faulty listener must not break credential resolution.
    }
  }
}
