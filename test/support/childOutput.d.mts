import type { ChildProcess } from "node:child_process";

export interface ChildOutput {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Collects `child`'s stdout and stderr as UTF-8 text (stderr up to about `maxStderr`
 * characters) and resolves with them and its exit code and signal once it has closed.
 * With `killAfterMs`, a child still running by then is killed with SIGKILL. Rejects when the
 * child could not be spawned.
 */
export function outputOf(
  child: ChildProcess,
  options?: { maxStderr?: number; killAfterMs?: number },
): Promise<ChildOutput>;
