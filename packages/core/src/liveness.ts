import { readFileSync } from "node:fs";
import { hostname } from "node:os";

/**
 * Liveness probes beside the host identity: is the process behind an attempt mark still
 * running? Only answerable for a process on this very machine (same boot), so a mark
 * carries the boot id and the pid.
 */

let machine: string | undefined;
/** The boot id (Linux), else the host name: enough to tell "this machine" apart for pid checks. */
export function thisMachine(): string {
  if (machine === undefined) {
    try {
      machine = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim() || hostname();
    } catch {
      machine = hostname();
    }
  }
  return machine;
}

/** True when the process `pid` of `machineId` is known to be gone: this machine, and no such pid. */
export function processIsGone(machineId: string, pid: number): boolean {
  if (machineId !== thisMachine() || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH";
  }
}
