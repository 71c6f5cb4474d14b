import type { Report } from "./report.js";
import type { Clock } from "./types.js";

/** A pause inside a resolution. Not unref'd: a caller is waiting on it, so the process must stay up. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * One caller's wait for a refresh: how long it has waited (what its patience is measured
 * against, by the injected clock) and the lock-busy / lock-waited events, each reported once.
 */
export class CallerWait {
  private readonly started: number;
  /** Time slept counts as waited even when the clock does not move (a test's frozen clock). */
  private slept = 0;
  private waited = false;

  constructor(
    private readonly clock: Clock,
    private readonly report: Report,
  ) {
    this.started = clock.now();
  }

  get ms(): number {
    return Math.max(this.clock.now() - this.started, this.slept);
  }

  async pause(ms: number): Promise<void> {
    this.slept += ms;
    await sleep(ms);
  }

  /** This caller found it must wait (a live attempt, a backoff, a busy lock): counted once. */
  busy(): void {
    if (!this.waited) this.report.lockBusy();
    this.waited = true;
  }

  /** How the wait ended; reported only by a caller that did wait. */
  ended(outcome: "adopted" | "acquired" | "timeout"): void {
    if (this.waited) this.report.lockWaited(this.ms, outcome);
  }
}
