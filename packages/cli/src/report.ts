import type { CacheEvent, Logger } from "@credcache/core";

/** An instant for a message: ISO 8601, or "never". */
export function isoOrNever(epochMs: number | undefined): string {
  return epochMs === undefined ? "never" : new Date(epochMs).toISOString();
}

/**
 * The warning line an event deserves, or `undefined` for events that need none (hits,
 * misses, locks taken, a refresh that worked). Core's events hold no secret; their texts
 * come from a source or a store, so the caller prints them through `oneLine`.
 */
export function warningOf(event: CacheEvent): string | undefined {
  switch (event.type) {
    case "refresh-failure":
      return `fetching failed (${event.error.message})${event.retryAt ? `; next attempt after ${isoOrNever(event.retryAt)}` : ""}`;
    case "stale-served":
      return `refreshing failed (${event.error.message}); served cached credentials that expire at ${isoOrNever(event.expiration)}`;
    case "extended":
      return `the source could not renew the credentials (${event.error.message}); handing out an expired set extended to ${isoOrNever(event.expiration)} (static stability)`;
    case "cache-error":
      return cacheErrorLine([event.operation], event.error.message);
    case "record-rejected":
      return `discarded an unreadable cache entry (${event.reason})`;
    case "lock-waited":
      return event.outcome === "timeout"
        ? `waited ${event.waitedMs} ms for the refresh lock with no attempt visible, then fetched itself`
        : undefined;
    default:
      return undefined;
  }
}

/**
 * The logger handed to core and the SDK: silent. Everything worth a line reaches the CLI
 * as an event ({@link warningOf}): core emits one for each of its own log lines, and the
 * SDK's one notice (its static-stability extension) is core's `extended` event. Reporting
 * events, not log text, gives one line per cause however either library words its logs.
 */
export const SILENT_LOGGER: Logger = { debug() {}, info() {}, warn() {}, error() {} };

function cacheErrorLine(operations: readonly string[], message: string): string {
  return `cache ${operations.join(", ")} failed: ${message}`;
}

/**
 * Warning lines of one short-lived run, each cause once: one failing store fails get,
 * acquireLock and set alike, which is one line naming the three operations; a failed
 * fetch is one line, whether it shows as the set served anyway or as the refresh behind.
 */
export class Warnings {
  private readonly lines = new Set<string>();
  private readonly cacheErrors = new Map<string, string[]>();
  /** A refresh behind a valid set that failed: reported unless a line already says so. */
  private failedBehind: string | undefined;
  private servedDespiteFailure = false;

  add(line: string): void {
    this.lines.add(line);
  }

  /** Notes an event's warning, if it has one. */
  note(event: CacheEvent): void {
    switch (event.type) {
      case "cache-error": {
        const operations = this.cacheErrors.get(event.error.message) ?? [];
        if (!operations.includes(event.operation)) operations.push(event.operation);
        this.cacheErrors.set(event.error.message, operations);
        return;
      }
      case "refresh-failure":
        // In the foreground the failure is the run's own error, or a stale-served or
        // extended event; only one behind a valid set has no other line.
        if (event.background) this.failedBehind ??= warningOf(event);
        return;
      case "stale-served":
      case "extended":
        this.servedDespiteFailure = true;
        break;
    }
    const line = warningOf(event);
    if (line !== undefined) this.lines.add(line);
  }

  /** Every line, cache errors last. */
  all(): string[] {
    const behind = this.failedBehind !== undefined && !this.servedDespiteFailure ? [this.failedBehind] : [];
    const cache = [...this.cacheErrors].map(([message, operations]) => cacheErrorLine(operations, message));
    return [...this.lines, ...behind, ...cache];
  }
}
