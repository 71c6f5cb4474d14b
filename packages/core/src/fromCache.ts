import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from "@smithy/types";
import { DEFAULT_CACHE_KEY, SDK_REFRESH_WINDOWS } from "./defaults.js";
import { CredentialsUnavailableError } from "./errors.js";
import { GuardedStore, type StoreSession } from "./guardedStore.js";
import {
  adopts,
  afterFailure,
  busyPauseUntil,
  classifyFetched,
  decide,
  fencedBy,
  holderMayTryAgain,
  holderPauseMs,
  holderTries,
  mayStore,
  patienceLeft,
  pollDelayMs,
  recordTtlSeconds,
  type Timeline,
  timelineOf,
  timerAt,
  windowAt,
} from "./policy.js";
import { toIdentity, toRecord } from "./record.js";

import { holderIsDead, type RefreshState } from "./refreshState.js";
import { LOG_PREFIX, Report } from "./report.js";
import { type FromCacheInit, type Settings, settle } from "./settings.js";
import { SharedState } from "./sharedState.js";
import type { CacheLock, CacheRecord, CacheStats, Clock, EventError, RefreshReason } from "./types.js";

export type { FromCacheInit };
export { DEFAULT_CACHE_KEY };

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

/** An attempt that did not run: someone else's is live, or the shared backoff forbids one. */
type NoAttempt = "busy" | "backoff";

/** Errors for a source that answered with credentials that cannot be used (expired on arrival, none). */
const unusableAnswers = new WeakSet<object>();
function unusable(error: Error): Error {
  unusableAnswers.add(error);
  return error;
}

/** A pause inside a resolution. Not unref'd: a caller is waiting on it, so the process must stay up. */
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Wraps a credential provider with an in-process memo (L1) and a shared store (L2)
 * that every process on a host, or every host in a fleet, can read. Credentials are
 * fetched once, ahead of expiry, by one process at a time under the store's lock, with
 * the outcome (in progress, failed and when to try again) shared through the store.
 * Nobody waits while a valid set exists, and good credentials keep being served while
 * the source is slow or down. A failing store never fails a resolution: it degrades to
 * "no L2" for that call and raises a `cache-error` event.
 *
 * Every rule it follows is a named function of the policy (`policy.ts`); this file only
 * reads and writes the store and the source, and asks.
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
  provider.stats = () => ({ ...refresher.report.stats });
  provider.close = () => refresher.close();
  // Credentials live in the refresher, which the provider function does not expose to
  // util.inspect or JSON.stringify.
  return provider;
}

/** The orchestrator: reads and writes, and asks the policy what to do. */
class Refresher {
  readonly report: Report;
  private readonly s: Settings;
  private readonly source: AwsCredentialIdentityProvider;
  private readonly store: GuardedStore | undefined;
  private readonly clock: Clock;
  private readonly random: () => number;

  private readonly sourceLabel: string | undefined;

  private held: Held | undefined;
  private readonly shared: SharedState;
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

  constructor(init: FromCacheInit) {
    this.random = init.random ?? Math.random;
    this.s = settle(init, this.random);
    this.source = init.provider;
    this.clock = init.clock ?? Date;
    this.sourceLabel = init.source;
    const report = new Report(this.s.key, init.logger, init.onEvent, () => this.clock.now());
    this.report = report;
    this.store =
      init.cache &&
      new GuardedStore(init.cache, this.s.cacheTimeoutMs, {
        key: this.s.key,
        logger: init.logger,
        logPrefix: LOG_PREFIX,
        now: () => this.clock.now(),
        emit: (event) => report.emit(event),
        secrets: () => report.secrets,
      });
    this.shared = new SharedState(this.store, this.s, this.clock, this.random, report);
    if (init.key === undefined && init.cache && init.cache.scope !== "process") {
      report.warn(
        `no key given: using "${DEFAULT_CACHE_KEY}" on a store other processes read; ` +
          "two providers with different credentials would share it. Pass a key, or use a preset",
      );
    }
    const { mandatoryMs } = this.s.policy;
    if (mandatoryMs <= SDK_REFRESH_WINDOWS.javascriptV3Ms && mandatoryMs !== 0) {
      report.warn(
        `mandatoryRefreshMs (${mandatoryMs}) is not above the SDK client's 5 min window; ` +
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
        this.report.hit(now, "l1", "fresh");
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
    const decision = decide(now, h?.t, this.shared.view, this.s.patience.lockWaitMs);
    if (h && (decision === "serve" || decision === "serve-and-refresh")) {
      this.countHit(h, now);
      if (decision === "serve-and-refresh" && !this.closed) {
        this.refreshBehind(windowAt(h.t, now) === "mandatory" ? "mandatory" : "advisory");
      }
      return h.identity;
    }
    if (this.closed) return this.answerClosed();
    if (!h) this.report.miss(now);
    return this.waitForRefresh(options, h ? "expired" : "miss", session);
  }

  private countHit(h: Held, now: number): void {
    const window = windowAt(h.t, now);
    this.report.hit(now, h.fromStore ? "l2" : "l1", window);
    h.fromStore = false;
    if (window === "mandatory" && this.shared.view.failures > 0) {
      // The set is being served because refreshing it keeps failing: say so.
      this.report.staleServed(
        h.record,
        this.shared.lastError ?? { name: "Error", message: "the last refresh failed" },
      );
    }
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
    this.report.remember(record);
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

  /** Holds the stored record when the policy says it spares this caller a fetch ({@link adopts}). */
  private async adoptFromStore(session: StoreSession, blocking: boolean): Promise<Held | undefined> {
    if (!this.store) return undefined;
    const record = await this.store.readRecord(session);
    if (!record) return undefined;
    const now = this.clock.now();
    const t = timelineOf(record, this.s.policy);
    if (!adopts(now, { record, t }, this.held, blocking)) return undefined;
    const adopted = this.hold(record, false);
    this.report.hit(now, "l2", windowAt(t, now));
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
        this.behindNotBefore = busyPauseUntil(this.clock.now(), this.s.policy, this.random);
        this.schedule();
      }
    })().catch((error) => {
      // attempt() reports its own failures; this only catches the unexpected.
      this.report.logger?.error?.(
        `${LOG_PREFIX} background refresh of "${this.s.key}" failed: ${this.report.describe(error).message}`,
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

  /**
   * A caller without a valid set: adopt what a peer wrote, wait for a live attempt or the
   * end of the shared backoff, or attempt itself under the lock; after its own attempt
   * failed it waits like any other caller. Every wait ends when {@link patienceLeft} says.
   */
  private async waitLoop(
    options: CachedProviderOptions | undefined,
    reason: RefreshReason,
    session: StoreSession,
  ): Promise<AwsCredentialIdentity> {
    const force = reason === "force";
    const key = this.s.key;
    const started = this.clock.now();
    // Time slept counts as waited even when the clock does not move (a test's frozen clock).
    let slept = 0;
    const waitedMs = () => Math.max(this.clock.now() - started, slept);
    const pause = async (ms: number) => {
      slept += ms;
      await sleep(ms);
    };
    let waited = false;
    const waitedEvent = (outcome: "adopted" | "acquired" | "timeout") => {
      if (waited) this.report.lockWaited(waitedMs(), outcome);
    };
    const noteWaiting = () => {
      if (!waited) this.report.lockBusy();
      waited = true;
    };
    /** This caller's own failed attempt: what it throws when nothing better comes within its patience. */
    let ownFailure: unknown;
    const giveUp = (state: RefreshState | undefined) =>
      ownFailure === undefined ? this.failFast(state) : this.answerFailure(ownFailure);
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
      const state = await this.shared.read(session);
      const now = this.clock.now();
      const live = now < this.shared.view.attemptUntil;
      const patience = patienceLeft(this.s.patience, waitedMs(), Boolean(this.held), live);
      if (!force) {
        const decision = decide(now, undefined, this.shared.view, Math.max(0, patience));
        if (decision === "fail") return giveUp(state);
        if (live && state?.attempt && holderIsDead(state.attempt)) {
          // The holder died on this machine: one waiter takes over now, not at lease end.
          const takeover = await this.store?.lock(
            `${key}#takeover:${state.attempt.id}`,
            this.s.lockTtlMs,
            session,
          );
          if (takeover && "held" in takeover) {
            const outcome = await this.attemptOnce(options, reason, session, takeover.held, false);
            if (outcome.identity) return outcome.identity;
            ownFailure = outcome.error ?? ownFailure;
            continue;
          }
        }
        if ((live || now < this.shared.view.nextAttemptAt) && patience > 0) {
          noteWaiting();
          await pause(pollDelayMs(this.s.lockPollMs, this.shared.view.nextAttemptAt - now, this.random));
          continue;
        }
      }
      const lock = this.store
        ? await this.store.lock(key, this.s.lockTtlMs, session)
        : { unavailable: true as const };
      if ("busy" in lock) {
        noteWaiting();
        // A recorded failure means the lock is between attempts (the holder is sharing its
        // outcome, or the next one is about to mark itself): wait for it as for a live one.
        const active = live || this.shared.view.failures > 0;
        if (patienceLeft(this.s.patience, waitedMs(), false, active) <= 0) {
          // A lock held past this caller's patience with no attempt it can wait for (a peer
          // without shared state, a store that cannot keep it, a planted lock): fetch, as
          // the SDK alone would.
          waitedEvent("timeout");
          this.report.warn(
            `waited ${Math.round(waitedMs())} ms for the refresh lock on "${key}" with no attempt it could wait for; fetching`,
          );
          const outcome = await this.attemptOnce(options, reason, session, undefined, force);
          return outcome.identity ?? this.answerFailure(outcome.error);
        }
        await pause(pollDelayMs(this.s.lockPollMs, 0, this.random));
        continue;
      }
      waitedEvent("acquired");
      const outcome = await this.attemptOnce(
        options,
        reason,
        session,
        "held" in lock ? lock.held : undefined,
        force,
      );
      if (outcome.identity) return outcome.identity;
      // Behaviour with a shared store: a holder whose attempt failed waits for the next
      // shared attempt like every other caller, within its own patience. Without a store
      // (or when forced) nobody else will try: answer now.
      if (outcome.error !== undefined) {
        if (force || !this.store) return this.answerFailure(outcome.error);
        ownFailure = outcome.error;
      }
    }
  }

  /**
   * One attempt for a caller without a valid set: its credentials (or, when the source
   * failed, whatever the failure ladder serves), the source's error when this caller holds
   * nothing, or neither when a peer's failure was found under the lock.
   */
  private async attemptOnce(
    options: CachedProviderOptions | undefined,
    reason: RefreshReason,
    session: StoreSession,
    lock: CacheLock | undefined,
    force: boolean,
  ): Promise<{ identity?: AwsCredentialIdentity; error?: unknown }> {
    try {
      const outcome = await this.attempt(options, reason, session, true, lock ?? null, force);
      // Someone failed meanwhile (a backoff found under the lock): wait like any caller.
      if (typeof outcome === "string") return {};
      return { identity: outcome.identity };
    } catch (error) {
      // With a set in hand (valid, or expired) the failure ladder answers now; a caller
      // with none may wait for the next shared attempt, unless the source did answer, with
      // credentials that cannot be used: asking again soon gives the same.
      if (this.held || unusableAnswers.has(error as object)) return { identity: this.answerFailure(error) };
      return { error };
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
      await this.shared.read(session);
      const now = this.clock.now();
      if (now < this.shared.view.attemptUntil) return "busy";
      if (now < this.shared.view.nextAttemptAt) return "backoff";
      const outcome = store ? await store.lock(this.s.key, this.s.lockTtlMs, session) : undefined;
      if (outcome && "busy" in outcome) return "busy";
      if (outcome && "held" in outcome) lock = outcome.held;
    }
    try {
      if (store && lock && !force) {
        // Double check under the lock: the previous holder may have just written.
        const adopted = await this.adoptFromStore(session, blocking);
        if (adopted) return adopted;
        await this.shared.read(session);
        if (this.clock.now() < this.shared.view.nextAttemptAt) return "backoff";
      }
      const failures = this.shared.view.failures;
      const started = this.clock.now();
      await this.shared.markAttempt(session);
      const tries = holderTries(blocking && !this.held, this.s.holderRetries);
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
          this.report.stats.sourceFailures += 1;
          const now = this.clock.now();
          const pause = holderPauseMs(this.s.lockTtlMs, this.random);
          if (i + 1 >= tries || !holderMayTryAgain(now, now - tryStarted, pause, started, this.s.lockTtlMs))
            break;
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
    await this.shared.clear(session);
    // The timer was set while our own attempt mark was live: set it again without.
    this.schedule();
  }

  /** Records a failed attempt for every process: the next one waits out the shared backoff. */
  private async shareFailure(failuresBefore: number, error: unknown, session: StoreSession): Promise<void> {
    const described = this.report.describe(error);
    const nextAttemptAt = await this.shared.fail(failuresBefore, described, session);
    const now = this.clock.now();
    this.schedule();
    const h = this.held;
    this.report.refreshFailure(
      described,
      nextAttemptAt,
      h && now < h.t.expiresAt ? h.t.expiresAt : undefined,
    );
  }

  /** Asks the source once; holds and writes (fenced) what it returns, as {@link classifyFetched} judges it. */
  private async fetch(
    options: CachedProviderOptions | undefined,
    reason: RefreshReason,
    background: boolean,
    session: StoreSession,
  ): Promise<Held> {
    const key = this.s.key;
    const started = this.clock.now();
    this.report.refreshStart(reason, background);
    const { forceRefresh: _ignored, ...identityProperties } = options ?? {};
    const identity = await this.source(identityProperties);
    const now = this.clock.now();
    if (
      !identity ||
      typeof identity.accessKeyId !== "string" ||
      typeof identity.secretAccessKey !== "string"
    ) {
      throw unusable(new CredentialsUnavailableError("credcache: the source returned no credentials"));
    }
    const original = (identity as { originalExpiration?: Date }).originalExpiration?.getTime();
    const fetched = classifyFetched(now, identity.expiration?.getTime(), original);
    if (fetched.kind === "extended") {
      // The SDK's static stability extended an expired set: serve it as such, never store it.
      const record = toRecord(
        { ...identity, expiration: new Date(fetched.expiredAt) },
        now,
        this.sourceLabel,
        key,
      );
      return this.extend(record, fetched.until, {
        name: "CredentialsExtended",
        message: `the source returned credentials that expired at ${new Date(fetched.expiredAt).toISOString()}`,
      });
    }
    if (fetched.kind === "expired") {
      throw unusable(
        new CredentialsUnavailableError(
          `credcache: the source returned credentials that expired at ${new Date(fetched.expiredAt).toISOString()}`,
        ),
      );
    }
    const held = await this.writeFenced(toRecord(identity, now, this.sourceLabel, key), session);
    this.report.refreshSuccess(held.record, this.clock.now() - started);
    return held;
  }

  /**
   * Writes a fetched set unless the store holds one that fences it ({@link fencedBy}): a
   * holder that was paused past its lease never replaces a successor's newer set.
   * Read-then-write: a store with no atomic compare leaves a window of one store round
   * trip, which a lease keeps rare.
   */
  private async writeFenced(record: CacheRecord, session: StoreSession): Promise<Held> {
    const store = this.store;
    if (!store) return this.hold(record, false);
    const stored = await store.readRecord(session);
    if (fencedBy(stored, record, this.clock.now(), this.s.policy)) return this.hold(stored, false);
    const held = this.hold(record, false);
    if (mayStore(record, store.scope, this.s.shareLongTerm)) {
      await store.writeRecord(record, recordTtlSeconds(record, this.clock.now(), this.s.policy), session);
    }
    return held;
  }

  /** Static stability: keep `record` for `until` with the SDK's warning, in this process only. */
  private extend(record: CacheRecord, until: number, error: EventError): Held {
    const held = this.hold(record, false, until);
    this.report.extended(record, until, error);
    return held;
  }

  /** Answers a caller after a failure, as the failure ladder ({@link afterFailure}) says. */
  private answerFailure(error: unknown): AwsCredentialIdentity {
    const now = this.clock.now();
    const h = this.held;
    const described = this.report.describe(error);
    const step = afterFailure(now, h?.t, this.s.staleIfError, this.random);
    if (h && step.step === "serve") {
      // A forced refresh or a caller below its floor: the set is still valid, hand it out.
      this.report.staleServed(h.record, described);
      return h.identity;
    }
    if (h && step.step === "extend") return this.extend(h.record, step.until, described).identity;
    if (h && step.step === "throw" && step.expired) {
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
   * that did failed: the failure ladder with the last shared error. The source is not asked.
   */
  private failFast(state: RefreshState | undefined): AwsCredentialIdentity {
    return this.answerFailure(this.shared.unavailable(state));
  }

  // ---- timer, controls ----

  private schedule(minDelayMs = 0): void {
    if (!this.s.proactive || this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const now = this.clock.now();
    const at = timerAt(now, this.held?.t, this.shared.view, this.behindNotBefore);
    if (at === undefined) return;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        const now = this.clock.now();
        const held = this.held;
        if (held && decide(now, held.t, this.shared.view, 0) === "serve-and-refresh") {
          this.refreshBehind("advisory");
        } else if (!this.behind) {
          // Timers may fire a millisecond early, and an attempt elsewhere may be live: look
          // again later rather than never.
          this.schedule(this.s.lockPollMs);
        }
      },
      Math.max(minDelayMs, at - now),
    );
    this.timer.unref?.();
  }

  async invalidate(): Promise<void> {
    const dropped = this.held?.record.accessKeyId;
    this.held = undefined;
    this.shared.forget();
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
}
