/**
 * The line protocol between the suite (parent) and `child.js` (a child process that
 * runs a store module). One JSON object per line, in both directions.
 *
 * Child → parent, once, first: {@link ReadyMessage}.
 * Parent → child: {@link StoreRequest}. Child → parent: {@link StoreResponse} with the same `id`.
 * Requests are handled concurrently; answers may come back in any order.
 */

/** An error as it crosses the process boundary. */
export interface WireError {
  name: string;
  message: string;
  code?: string;
}

export type ReadyMessage = { ready: true; pid: number } | { ready: false; error: WireError };

export type StoreRequest =
  | { id: number; op: "get"; key: string }
  | { id: number; op: "set"; key: string; value: unknown; ttlSeconds?: number }
  | { id: number; op: "remove"; key: string }
  | { id: number; op: "acquireLock"; key: string; ttlMs: number }
  | { id: number; op: "release"; lock: string }
  | { id: number; op: "close" };

/**
 * `value` is absent when the result is `undefined` (a miss, a busy lock, a void call).
 * For `acquireLock` it is `{ lock, takenOver? }`: `lock` names the handle for `release`.
 */
export type StoreResponse =
  | { id: number; ok: true; value?: unknown }
  | { id: number; ok: false; error: WireError };

export interface WireLock {
  lock: string;
  takenOver?: boolean;
}

export function toWireError(error: unknown): WireError {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return { name: error.name, message: error.message, ...(typeof code === "string" && { code }) };
  }
  return { name: "NonError", message: String(error) };
}
