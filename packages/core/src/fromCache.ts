import type { AwsCredentialIdentity } from "@smithy/types";
import { Attempts, type Call, type NoAttempt } from "./attempt.js";
import type { CachedCredentialProvider, CachedProviderOptions } from "./cachedProvider.js";
import { CallerWait } from "./callerWait.js";
import { DEFAULT_CACHE_KEY } from "./defaults.js";
import { settleWithin } from "./drain.js";
import { CredentialsUnavailableError } from "./errors.js";
import { GuardedStore, type StoreSession } from "./guardedStore.js";
import { type Held, Memo } from "./memo.js";
import {
  afterFailure,
  busyPauseUntil,
  decide,
  failureAnswersNow,
  holderWaitsAfterFailure,
  invalidateRemoves,
  patienceLeft,
  pollDelayMs,
  refreshReasonAt,
  servedStale,
  timerAt,
  waiterStep,
  waitsForBusyLock,
  windowAt,
} from "./policy.js";
import { ProactiveTimer } from "./proactiveTimer.js";
import { holderIsDead, type RefreshState } from "./refreshState.js";
import { LOG_PREFIX, Report } from "./report.js";
import { type FromCacheInit, type Settings, settingsWarnings, settle } from "./settings.js";
import { SharedState } from "./sharedState.js";
import { isUnusableAnswer } from "./sourceAnswer.js";
import type { CacheLock, Clock, RefreshReason } from "./types.js";

export type { CachedCredentialProvider, CachedProviderOptions } from "./cachedProvider.js";
export type { FromCacheInit };
export { DEFAULT_CACHE_KEY };

/** A caller without a valid set, waiting for a refresh. */
interface Waiter extends Call {
  force: boolean;
  wait: CallerWait;
  /** Its own failed attempt: what it throws when nothing better comes within its patience. */
  ownFailure?: unknown;
}

/** What a waiter saw in the shared state at `now`. */
interface Look {
  state: RefreshState | undefined;
  now: number;
  /** Some process's attempt is live. */
  live: boolean;
}

/**
 * One step of a waiter: its credentials (or what the failure ladder answers), the error of
 * its own failed attempt, or neither (look again).
 */
interface Turn {
  identity?: AwsCredentialIdentity;
  error?: unknown;
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
  private readonly store: GuardedStore | undefined;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly shared: SharedState;
  private readonly timer = new ProactiveTimer();
  private readonly attempts: Attempts;
  /** L1: the set this process holds. */
  private readonly memo: Memo;

  /** The one wait for a refresh that callers without a valid set share. */
  private waiting: Promise<AwsCredentialIdentity> | undefined;
  /** The one refresh behind a valid set. */
  private behind: Promise<void> | undefined;
  /** No refresh behind before then after finding the lock busy (local, not shared). */
  private behindNotBefore = 0;
  private closed = false;

  constructor(init: FromCacheInit) {
    this.random = init.random ?? Math.random;
    this.s = settle(init, this.random);
    this.clock = init.clock ?? Date;
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
    this.memo = new Memo(this.s.policy, this.store, report, this.clock, () => this.schedule());
    this.shared = new SharedState(this.store, this.s, this.clock, this.random, report);
    this.attempts = new Attempts({
      s: this.s,
      clock: this.clock,
      random: this.random,
      source: init.provider,
      sourceLabel: init.source,
      store: this.store,
      shared: this.shared,
      memo: this.memo,
      report,
      // After an attempt's outcome is shared: set the timer again without its mark.
      sharedChanged: () => this.schedule(),
    });
    for (const warning of settingsWarnings(init, this.s)) report.warn(warning);
  }

  // ---- answering ----

  get(options: CachedProviderOptions | undefined): Promise<AwsCredentialIdentity> {
    // Hot path: fresh credentials in L1 cost one clock read.
    const h = this.memo.held;
    if (h !== undefined && !h.fromStore && (options === undefined || !options.forceRefresh)) {
      const now = this.clock.now();
      if (now < h.t.freshUntil) {
        this.report.hit(now, "l1", "fresh");
        return Promise.resolve(h.identity);
      }
    }
    return this.resolve(options);
  }

  /** Asks {@link decide}: serve what is held (and maybe refresh behind), or wait for a refresh. */
  private async resolve(options: CachedProviderOptions | undefined): Promise<AwsCredentialIdentity> {
    // Once a store call fails, the rest of this resolution goes on without the store.
    const session: StoreSession = { down: false };
    if (options?.forceRefresh) {
      if (this.closed) return this.answerClosed();
      return this.waitForRefresh({ options, reason: "force", session });
    }
    if (!this.memo.held) {
      if (this.waiting) return this.waiting;
      if (this.store) await this.memo.load(session);
    }
    const h = this.memo.held;
    const now = this.clock.now();
    const decision = decide(now, h?.t, this.shared.view, this.s.patience.lockWaitMs);
    if (h && (decision === "serve" || decision === "serve-and-refresh")) {
      this.countHit(h, now);
      if (decision === "serve-and-refresh" && !this.closed) this.refreshBehind(refreshReasonAt(h.t, now));
      return h.identity;
    }
    if (this.closed) return this.answerClosed();
    if (!h) this.report.miss(now);
    return this.waitForRefresh({ options, reason: h ? "expired" : "miss", session });
  }

  private countHit(h: Held, now: number): void {
    const window = windowAt(h.t, now);
    this.report.hit(now, h.fromStore ? "l2" : "l1", window);
    h.fromStore = false;
    if (servedStale(window, this.shared.view)) {
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

  // ---- refreshing behind a valid set ----

  /** Serve now, refresh behind: one attempt, try-lock only, never waits. */
  private refreshBehind(reason: RefreshReason): void {
    if (this.behind || this.waiting || this.closed) return;
    if (this.clock.now() < this.behindNotBefore) return;
    const run = this.runBehind({ options: undefined, reason, session: { down: false } }).catch((error) => {
      // An attempt reports its own failures; this only catches the unexpected.
      this.report.logger?.error?.(
        `${LOG_PREFIX} background refresh of "${this.s.key}" failed: ${this.report.describe(error).message}`,
      );
    });
    this.behind = run;
    run.finally(() => {
      if (this.behind === run) this.behind = undefined;
    });
  }

  private async runBehind(call: Call): Promise<void> {
    if (await this.memo.adopt(call.session, false)) return;
    let outcome: Held | NoAttempt;
    try {
      outcome = await this.attempts.run(call, false);
    } catch {
      return; // a failed attempt is shared and reported (refresh-failure, a warning) by Attempts
    }
    if (outcome === "busy") {
      this.behindNotBefore = busyPauseUntil(this.clock.now(), this.s.policy, this.random);
      this.schedule();
    }
  }

  // ---- waiting for a refresh ----

  /** Callers without a valid set share one wait: for a peer's result, or for their own attempt. */
  private waitForRefresh(call: Call): Promise<AwsCredentialIdentity> {
    if (this.waiting) return this.waiting;
    const run = this.waitLoop(call);
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
  private async waitLoop(call: Call): Promise<AwsCredentialIdentity> {
    const w: Waiter = {
      ...call,
      force: call.reason === "force",
      wait: new CallerWait(this.clock, this.report),
    };
    // A refresh behind in this process is an attempt like any other: wait for it first.
    if (this.behind) await this.behind;
    // After a miss the store was read a moment ago.
    let readRecord = !w.force && w.reason !== "miss";
    for (;;) {
      if (this.closed) return this.answerClosed();
      if (readRecord) {
        const adopted = await this.memo.adopt(w.session, true);
        if (adopted) {
          w.wait.ended("adopted");
          return adopted.identity;
        }
      }
      readRecord = true;
      const state = await this.shared.read(w.session);
      const now = this.clock.now();
      const look: Look = { state, now, live: now < this.shared.view.attemptUntil };
      // A forced refresh does not wait for the shared state: it goes for the lock.
      const turn = w.force ? "lock" : await this.lookAtShared(w, look);
      const done = turn === "lock" ? await this.lockTurn(w, look) : turn;
      if (done.identity) return done.identity;
      w.ownFailure = done.error ?? w.ownFailure;
    }
  }

  /** A waiter reads the shared state: gives up, takes over from a dead holder, waits, or goes for the lock. */
  private async lookAtShared(w: Waiter, { state, now, live }: Look): Promise<Turn | "lock"> {
    const patience = patienceLeft(this.s.patience, w.wait.ms, Boolean(this.memo.held), live);
    const step = waiterStep(now, this.shared.view, patience);
    if (step === "give-up") return { identity: this.giveUp(w, state) };
    if (live && state?.attempt && holderIsDead(state.attempt)) {
      const taken = await this.takeOver(w, state.attempt.id);
      if (taken) return taken;
    }
    if (step === "lock") return "lock";
    w.wait.busy();
    await w.wait.pause(pollDelayMs(this.s.lockPollMs, this.shared.view.nextAttemptAt - now, this.random));
    return {};
  }

  /** The holder died on this machine: one waiter takes over now, not at lease end. */
  private async takeOver(w: Waiter, attemptId: string): Promise<Turn | undefined> {
    const takeover = await this.store?.lock(
      `${this.s.key}#takeover:${attemptId}`,
      this.s.lockTtlMs,
      w.session,
    );
    if (!takeover || !("held" in takeover)) return undefined;
    return this.attemptOnce(w, takeover.held, false);
  }

  /** A waiter tries the lock: attempts under it, waits while it is busy, or fetches past its patience. */
  private async lockTurn(w: Waiter, look: Look): Promise<Turn> {
    const lock = this.store
      ? await this.store.lock(this.s.key, this.s.lockTtlMs, w.session)
      : { unavailable: true as const };
    if ("busy" in lock) {
      w.wait.busy();
      if (waitsForBusyLock(this.s.patience, w.wait.ms, look.live, this.shared.view)) {
        await w.wait.pause(pollDelayMs(this.s.lockPollMs, 0, this.random));
        return {};
      }
      w.wait.ended("timeout");
      this.report.warn(
        `waited ${Math.round(w.wait.ms)} ms for the refresh lock on "${this.s.key}" with no attempt it could wait for; fetching`,
      );
      const outcome = await this.attemptOnce(w, undefined, w.force);
      return { identity: outcome.identity ?? this.answerFailure(outcome.error) };
    }
    w.wait.ended("acquired");
    const outcome = await this.attemptOnce(w, "held" in lock ? lock.held : undefined, w.force);
    if (outcome.error !== undefined && !holderWaitsAfterFailure(w.force, this.store !== undefined)) {
      return { identity: this.answerFailure(outcome.error) };
    }
    return outcome;
  }

  /** Nothing came within the waiter's patience: its own failure, else the shared one ({@link afterFailure}). */
  private giveUp(w: Waiter, state: RefreshState | undefined): AwsCredentialIdentity {
    return this.answerFailure(w.ownFailure === undefined ? this.shared.unavailable(state) : w.ownFailure);
  }

  /**
   * One attempt for a caller without a valid set: its credentials (or, when the source
   * failed, whatever the failure ladder serves), the source's error when this caller holds
   * nothing, or neither when a peer's failure was found under the lock.
   */
  private async attemptOnce(call: Call, lock: CacheLock | undefined, force: boolean): Promise<Turn> {
    try {
      const outcome = await this.attempts.run(call, true, lock ?? null, force);
      // Someone failed meanwhile (a backoff found under the lock): wait like any caller.
      if (typeof outcome === "string") return {};
      return { identity: outcome.identity };
    } catch (error) {
      if (failureAnswersNow(Boolean(this.memo.held), isUnusableAnswer(error))) {
        return { identity: this.answerFailure(error) };
      }
      return { error };
    }
  }

  // ---- after a failure ----

  /** Answers a caller after a failure, as the failure ladder ({@link afterFailure}) says. */
  private answerFailure(error: unknown): AwsCredentialIdentity {
    const now = this.clock.now();
    const h = this.memo.held;
    const described = this.report.describe(error);
    const step = afterFailure(now, h?.t, this.s.staleIfError, this.random);
    if (h && step.step === "serve") {
      // A forced refresh or a caller below its floor: the set is still valid, hand it out.
      this.report.staleServed(h.record, described);
      return h.identity;
    }
    if (h && step.step === "extend") return this.memo.extend(h.record, step.until, described).identity;
    if (h && step.step === "throw" && step.expired) {
      throw new CredentialsUnavailableError(
        `credcache: the source failed and the cached credentials for "${this.s.key}" expired at ` +
          `${new Date(h.t.expiresAt).toISOString()} (${described.message}). Enable staleIfError to keep serving them.`,
        { cause: error },
      );
    }
    throw error;
  }

  // ---- timer, controls ----

  /** (Re)sets the proactive timer where {@link timerAt} says. */
  private schedule(minDelayMs = 0): void {
    if (!this.s.proactive || this.closed) return;
    this.timer.cancel();
    const now = this.clock.now();
    const at = timerAt(now, this.memo.held?.t, this.shared.view, this.behindNotBefore);
    if (at === undefined) return;
    this.timer.set(Math.max(minDelayMs, at - now), () => this.onTimer());
  }

  private onTimer(): void {
    const held = this.memo.held;
    if (held && decide(this.clock.now(), held.t, this.shared.view, 0) === "serve-and-refresh") {
      this.refreshBehind("advisory");
    } else if (!this.behind) {
      // Timers may fire a millisecond early, and an attempt elsewhere may be live: look
      // again later rather than never.
      this.schedule(this.s.lockPollMs);
    }
  }

  async invalidate(): Promise<void> {
    const dropped = this.memo.drop();
    this.shared.forget();
    this.behindNotBefore = 0;
    this.timer.cancel();
    const store = this.store;
    if (!store) return;
    const session: StoreSession = { down: false };
    await store.remove(store.stateKey, session);
    const stored = await store.readRecord(session);
    if (invalidateRemoves(stored, dropped)) await store.remove(this.s.key, session);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.timer.cancel();
    // After lockTtlMs the lock is free for others anyway.
    await settleWithin([this.behind, this.waiting], this.s.lockTtlMs);
  }
}
