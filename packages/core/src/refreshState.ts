import { randomUUID } from "node:crypto";
import { processIsGone, thisMachine } from "./liveness.js";
import type { SharedView } from "./policy.js";
import type { EventError } from "./types.js";

/**
 * The refresh state every process sees through the store, under its own key beside the
 * credentials: "attempt in progress until T", "failed N times, next attempt not before
 * T", with the last error (scrubbed). One record per cache key, so the backoff is per key
 * per store, not per process, and a waiter can tell a live attempt from a dead one.
 */
export interface RefreshState {
  v: 1;
  kind: "refresh-state";
  failures: number;
  nextAttemptAt: number;
  attempt?: AttemptMark;
  error?: EventError;
}

/** Who is trying, and until when its lease runs. */
export interface AttemptMark {
  id: string;
  /** This machine's boot, so a pid is only judged on the machine it belongs to. */
  machine: string;
  pid: number;
  until: number;
}

/** Suffix of the key the refresh state lives under. */
export const REFRESH_STATE_SUFFIX = "#refresh";

/** The key the refresh state of `key` lives under. */
export function refreshStateKey(key: string): string {
  return `${key}${REFRESH_STATE_SUFFIX}`;
}

/** True for keys that hold refresh state rather than credentials (for tools listing a store). */
export function isRefreshStateKey(key: string): boolean {
  return key.endsWith(REFRESH_STATE_SUFFIX);
}

export function newAttemptMark(until: number): AttemptMark {
  return { id: randomUUID(), machine: thisMachine(), pid: process.pid, until };
}

/** True when the attempt's process is known to be gone: same machine, and no such pid. */
export function holderIsDead(mark: AttemptMark): boolean {
  return processIsGone(mark.machine, mark.pid);
}

/** C0 and C1 control characters (and DEL) as `\\xNN`. */
function escapeControls(text: string): string {
  let out = "";
  for (const c of text) {
    const code = c.charCodeAt(0);
    out += code < 0x20 || (code >= 0x7f && code <= 0x9f) ? `\\x${code.toString(16).padStart(2, "0")}` : c;
  }
  return out;
}

function finite(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value) && value >= 0;
}

/** Validates a stored refresh state; anything malformed reads as "no state". Never throws. */
export function parseRefreshState(value: unknown): RefreshState | undefined {
  let data = value;
  if (typeof data === "string") {
    if (data.length > 8192) return undefined;
    try {
      data = JSON.parse(data);
    } catch {
      return undefined;
    }
  }
  if (typeof data !== "object" || data === null) return undefined;
  const s = data as Record<string, unknown>;
  if (s.v !== 1 || s.kind !== "refresh-state" || !finite(s.failures) || !finite(s.nextAttemptAt)) {
    return undefined;
  }
  const state: RefreshState = {
    v: 1,
    kind: "refresh-state",
    failures: Math.min(1000, Math.floor(s.failures)),
    nextAttemptAt: s.nextAttemptAt,
  };
  const a = s.attempt as Record<string, unknown> | undefined;
  if (
    a &&
    typeof a === "object" &&
    typeof a.id === "string" &&
    typeof a.machine === "string" &&
    finite(a.pid) &&
    finite(a.until)
  ) {
    state.attempt = { id: a.id.slice(0, 64), machine: a.machine.slice(0, 256), pid: a.pid, until: a.until };
  }
  const e = s.error as Record<string, unknown> | undefined;
  if (e && typeof e === "object" && typeof e.name === "string" && typeof e.message === "string") {
    // Text from a store may be planted: it reaches messages and terminals escaped.
    state.error = {
      name: escapeControls(e.name.slice(0, 100)),
      message: escapeControls(e.message.slice(0, 500)),
      ...(typeof e.code === "string" && { code: escapeControls(e.code.slice(0, 100)) }),
    };
  }
  return state;
}

/** What {@link decide} needs from a stored state. */
export function viewOf(state: RefreshState | undefined): SharedView {
  return {
    attemptUntil: state?.attempt?.until ?? 0,
    nextAttemptAt: state?.nextAttemptAt ?? 0,
    failures: state?.failures ?? 0,
  };
}
