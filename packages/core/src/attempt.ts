import type { AwsCredentialIdentityProvider } from "@smithy/types";
import type { CachedProviderOptions } from "./cachedProvider.js";
import { sleep } from "./callerWait.js";
import type { GuardedStore, StoreSession } from "./guardedStore.js";
import type { Held, Memo } from "./memo.js";
import {
  decide,
  fencedBy,
  holderMayTryAgain,
  holderPauseMs,
  holderTries,
  mayStore,
  recordTtlSeconds,
  servingUntil,
} from "./policy.js";
import type { Report } from "./report.js";
import type { Settings } from "./settings.js";
import type { SharedState } from "./sharedState.js";
import { judgeAnswer } from "./sourceAnswer.js";
import type { CacheLock, CacheRecord, Clock, RefreshReason } from "./types.js";

/** An attempt that did not run: someone else's is live, or the shared backoff forbids one. */
export type NoAttempt = "busy" | "backoff";

/** What a caller asked for, and the store session of its resolution. */
export interface Call {
  options: CachedProviderOptions | undefined;
  reason: RefreshReason;
  session: StoreSession;
}

/** What the attempts of one provider work with. */
export interface AttemptParts {
  s: Settings;
  clock: Clock;
  random: () => number;
  source: AwsCredentialIdentityProvider;
  sourceLabel: string | undefined;
  store: GuardedStore | undefined;
  shared: SharedState;
  memo: Memo;
  report: Report;
  /** The shared state changed under this process: the proactive timer follows it. */
  sharedChanged: () => void;
}

/**
 * The attempts of one provider, each the same careful protocol: the lock, a double check
 * under it, the attempt marked live for every process, the holder's tries within its
 * lease, a fenced write, and the outcome shared. Every rule is the policy's.
 */
export class Attempts {
  private readonly s: Settings;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly source: AwsCredentialIdentityProvider;
  private readonly sourceLabel: string | undefined;
  private readonly store: GuardedStore | undefined;
  private readonly shared: SharedState;
  private readonly memo: Memo;
  private readonly report: Report;
  private readonly sharedChanged: () => void;

  constructor(parts: AttemptParts) {
    this.s = parts.s;
    this.clock = parts.clock;
    this.random = parts.random;
    this.source = parts.source;
    this.sourceLabel = parts.sourceLabel;
    this.store = parts.store;
    this.shared = parts.shared;
    this.memo = parts.memo;
    this.report = parts.report;
    this.sharedChanged = parts.sharedChanged;
  }

  /**
   * One careful attempt: under the lock (taken here unless given), double-check the store
   * and the shared state, mark the attempt as live, fetch (with retries within the lease
   * when `blocking`), write the result fenced, and share the outcome. Throws the source's
   * error when the attempt failed and no peer succeeded meanwhile.
   *
   * `given`: omitted, the lock is tried here (a refresh behind); a lock, the caller holds
   * it already; `null`, the caller attempts without one (no lock to be had, or it waited
   * past its patience for a lock with no attempt behind it).
   */
  async run(
    call: Call,
    blocking: boolean,
    given?: CacheLock | null,
    force = false,
  ): Promise<Held | NoAttempt> {
    let lock: CacheLock | undefined = given ?? undefined;
    if (given === undefined) {
      const taken = await this.takeLock(call.session);
      if (taken === "busy" || taken === "backoff") return taken;
      lock = taken;
    }
    try {
      if (this.store && lock && !force) {
        const found = await this.recheckUnderLock(call.session, blocking);
        if (found) return found;
      }
      return await this.fetchAndShare(call, blocking);
    } finally {
      if (lock) await this.store?.release(lock);
    }
  }

  /** Try-lock, unless the shared state says an attempt is live (busy) or the backoff forbids one. */
  private async takeLock(session: StoreSession): Promise<CacheLock | undefined | NoAttempt> {
    await this.shared.read(session);
    const decision = decide(this.clock.now(), undefined, this.shared.view, 0);
    if (decision === "wait") return "busy";
    if (decision === "fail") return "backoff";
    const outcome = this.store ? await this.store.lock(this.s.key, this.s.lockTtlMs, session) : undefined;
    if (outcome && "busy" in outcome) return "busy";
    return outcome && "held" in outcome ? outcome.held : undefined;
  }

  /** Double check under the lock: the previous holder may have just written, or failed. */
  private async recheckUnderLock(
    session: StoreSession,
    blocking: boolean,
  ): Promise<Held | "backoff" | undefined> {
    const adopted = await this.memo.adopt(session, blocking);
    if (adopted) return adopted;
    await this.shared.read(session);
    return this.clock.now() < this.shared.view.nextAttemptAt ? "backoff" : undefined;
  }

  /**
   * Marks the attempt as live, fetches with the holder's tries, and shares the outcome.
   * Before failing it re-reads the store: a peer may have succeeded.
   */
  private async fetchAndShare(call: Call, blocking: boolean): Promise<Held> {
    const failures = this.shared.view.failures;
    const started = this.clock.now();
    await this.shared.markAttempt(call.session);
    const fetched = await this.fetchWithTries(call, blocking, started);
    if (fetched.held) {
      if (fetched.held.t.extended) {
        await this.shareFailure(failures, new Error("the source returned expired credentials"), call.session);
      } else {
        await this.clearShared(call.session);
      }
      return fetched.held;
    }
    const adopted = await this.memo.adopt(call.session, blocking);
    if (adopted) {
      // A peer's success ends the run of failures as our own would.
      await this.clearShared(call.session);
      return adopted;
    }
    await this.shareFailure(failures, fetched.error, call.session);
    throw fetched.error;
  }

  /** The holder's tries ({@link holderTries}), paused ({@link holderPauseMs}), all inside its lease. */
  private async fetchWithTries(
    call: Call,
    blocking: boolean,
    started: number,
  ): Promise<{ held?: Held; error?: unknown }> {
    const tries = holderTries(blocking && !this.memo.held, this.s.holderRetries);
    let error: unknown;
    for (let i = 0; i < tries; i++) {
      const tryStarted = this.clock.now();
      try {
        return { held: await this.fetch(call, !blocking) };
      } catch (failure) {
        error = failure;
        this.report.sourceFailure();
        const now = this.clock.now();
        const pause = holderPauseMs(this.s.lockTtlMs, this.random);
        if (i + 1 >= tries || !holderMayTryAgain(now, now - tryStarted, pause, started, this.s.lockTtlMs))
          break;
        await sleep(pause);
      }
    }
    return { error };
  }

  /** After a success: no attempt live, no failures, for every process. */
  private async clearShared(session: StoreSession): Promise<void> {
    await this.shared.clear(session);
    // The timer was set while our own attempt mark was live: set it again without.
    this.sharedChanged();
  }

  /** Records a failed attempt for every process: the next one waits out the shared backoff. */
  private async shareFailure(failuresBefore: number, error: unknown, session: StoreSession): Promise<void> {
    const described = this.report.describe(error);
    const nextAttemptAt = await this.shared.fail(failuresBefore, described, session);
    const now = this.clock.now();
    this.sharedChanged();
    this.report.refreshFailure(described, nextAttemptAt, servingUntil(this.memo.held?.t, now));
  }

  /** Asks the source once; holds and writes (fenced) what it returns, as {@link judgeAnswer} judges it. */
  private async fetch(call: Call, background: boolean): Promise<Held> {
    const started = this.clock.now();
    this.report.refreshStart(call.reason, background);
    const { forceRefresh: _ignored, ...identityProperties } = call.options ?? {};
    const identity = await this.source(identityProperties);
    const answer = judgeAnswer(identity, this.clock.now(), this.sourceLabel, this.s.key);
    // The SDK's static stability extended an expired set: serve it as such, never store it.
    if (answer.kind === "extended") return this.memo.extend(answer.record, answer.until, answer.warning);
    const held = await this.writeFenced(answer.record, call.session);
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
    if (!store) return this.memo.hold(record, false);
    const stored = await store.readRecord(session);
    if (fencedBy(stored, record, this.clock.now(), this.s.policy)) return this.memo.hold(stored, false);
    const held = this.memo.hold(record, false);
    if (mayStore(record, store.scope, this.s.shareLongTerm)) {
      await store.writeRecord(record, recordTtlSeconds(record, this.clock.now(), this.s.policy), session);
    }
    return held;
  }
}
