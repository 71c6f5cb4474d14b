import { CredentialsUnavailableError } from "./errors.js";
import type { GuardedStore, StoreSession } from "./guardedStore.js";
import { backoffMs, NO_SHARED_STATE, plausibleView, type SharedView, stateTtlSeconds } from "./policy.js";
import { newAttemptMark, type RefreshState, viewOf } from "./refreshState.js";
import type { Report } from "./report.js";
import type { Settings } from "./settings.js";
import type { Clock, EventError } from "./types.js";

/**
 * The refresh state shared through the store, as this process last read or wrote it:
 * what the policy is asked with (`view`), the last error it recorded, and its reads and
 * writes. Without a store it is this process's own.
 */
export class SharedState {
  view: SharedView = NO_SHARED_STATE;
  /** The last error the shared state recorded, for events about the set still served. */
  lastError: EventError | undefined;

  constructor(
    private readonly store: GuardedStore | undefined,
    private readonly s: Settings,
    private readonly clock: Clock,
    private readonly random: () => number,
    private readonly report: Report,
  ) {}

  /** Reads the store's state; an implausible one is ignored ({@link plausibleView}). */
  async read(session: StoreSession): Promise<RefreshState | undefined> {
    if (!this.store) return undefined;
    const state = await this.store.readState(session);
    const now = this.clock.now();
    const { view, ignored } = plausibleView(viewOf(state), now, this.s.lockTtlMs, this.s.policy);
    this.view = view;
    if (ignored) {
      const at = ignored === "attempt" ? viewOf(state).attemptUntil : viewOf(state).nextAttemptAt;
      this.report.stateIgnored(
        `${ignored === "attempt" ? "attempt mark" : "backoff"} ${Math.round((at - now) / 1000)} s ahead`,
      );
      return undefined;
    }
    if (state?.error) this.lastError = state.error;
    return state;
  }

  /** Marks this process's attempt as live for one lease, for every process. */
  markAttempt(session: StoreSession): Promise<void> {
    const mark = newAttemptMark(this.clock.now() + this.s.lockTtlMs);
    return this.write(
      { v: 1, kind: "refresh-state", failures: this.view.failures, nextAttemptAt: 0, attempt: mark },
      session,
    );
  }

  /** Records a failed attempt for every process; returns when the next attempt may start. */
  async fail(failuresBefore: number, error: EventError, session: StoreSession): Promise<number> {
    const failures = failuresBefore + 1;
    const nextAttemptAt = this.clock.now() + backoffMs(failures, this.s.policy, this.random);
    await this.write({ v: 1, kind: "refresh-state", failures, nextAttemptAt, error }, session);
    return nextAttemptAt;
  }

  /** After a success: no attempt live, no failures, for every process. */
  async clear(session: StoreSession): Promise<void> {
    if (this.store) await this.store.remove(this.store.stateKey, session);
    this.forget();
  }

  /** Drops what this process knows (the store keeps its state). */
  forget(): void {
    this.view = NO_SHARED_STATE;
    this.lastError = undefined;
  }

  /** Why a caller gets nothing: the failures on record, and when the next attempt is. */
  unavailable(state: RefreshState | undefined): CredentialsUnavailableError {
    const { failures, nextAttemptAt } = this.view;
    const error = (failures > 0 && state?.error) || this.lastError;
    const key = this.s.key;
    return new CredentialsUnavailableError(
      (failures > 0
        ? `credcache: refreshing "${key}" failed ${failures} time(s) in a row`
        : `credcache: no refresh of "${key}" finished while this caller waited`) +
        (error ? ` (${error.message})` : "") +
        (nextAttemptAt > this.clock.now()
          ? `; the next attempt (by any process) is after ${new Date(nextAttemptAt).toISOString()}`
          : ""),
    );
  }

  private async write(state: RefreshState, session: StoreSession): Promise<void> {
    this.view = viewOf(state);
    if (state.error) this.lastError = state.error;
    if (!this.store) return;
    await this.store.writeState(state, stateTtlSeconds(this.s.policy, this.s.lockTtlMs), session);
  }
}
