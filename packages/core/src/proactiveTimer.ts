/**
 * The timer of a long-running process's refresh behind: at most one pending, unref'd, so
 * it never keeps a process up. When it fires is the policy's (`timerAt`).
 */
export class ProactiveTimer {
  private timer: NodeJS.Timeout | undefined;

  set(delayMs: number, fire: () => void): void {
    this.cancel();
    this.timer = setTimeout(() => {
      this.timer = undefined;
      fire();
    }, delayMs);
    this.timer.unref?.();
  }

  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
