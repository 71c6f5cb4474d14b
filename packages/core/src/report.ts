import type { Logger } from "@smithy/types";
import { describeError, RecentSecrets, truncateAccessKeyId } from "./redact.js";
import type {
  CacheEvent,
  CacheRecord,
  CacheStats,
  EventError,
  RefreshReason,
  RefreshWindow,
} from "./types.js";

export const LOG_PREFIX = "@credcache/core - fromCache";

/**
 * What a `fromCache` provider tells the outside: its counters, its events (`onEvent`) and
 * its log lines, for one key. Every text it reports is scrubbed of the secrets of the
 * last few credential sets it held.
 */
export class Report {
  readonly stats: CacheStats = {
    hitsL1: 0,
    hitsL2: 0,
    misses: 0,
    sourceCalls: 0,
    sourceFailures: 0,
    lockWaits: 0,
    cacheErrors: 0,
    recordsRejected: 0,
    staleServed: 0,
    extended: 0,
  };
  /** Secrets of the last few credential sets, scrubbed from every error text we report. */
  readonly secrets = new RecentSecrets();

  constructor(
    readonly key: string,
    readonly logger: Logger | undefined,
    private readonly onEvent: ((event: CacheEvent) => void) | undefined,
    private readonly now: () => number,
  ) {}

  emit(event: CacheEvent): void {
    // Counted here, from the events, so the store wrapper only reports.
    if (event.type === "cache-error") this.stats.cacheErrors += 1;
    else if (event.type === "record-rejected") this.stats.recordsRejected += 1;
    if (!this.onEvent) return;
    try {
      this.onEvent(event);
    } catch {
      // A faulty listener must not break credential resolution.
    }
  }

  /** Keeps a held set's secrets for scrubbing. */
  remember(record: CacheRecord): void {
    this.secrets.remember(record);
  }

  describe(error: unknown): EventError {
    return describeError(error, this.secrets);
  }

  warn(text: string): void {
    this.logger?.warn?.(`${LOG_PREFIX} ${text}`);
  }

  hit(now: number, layer: "l1" | "l2", window: RefreshWindow): void {
    if (layer === "l2") this.stats.hitsL2 += 1;
    else this.stats.hitsL1 += 1;
    // The hot path: no event object unless someone listens.
    if (this.onEvent) this.emit({ type: "hit", key: this.key, time: now, layer, window });
  }

  miss(now: number): void {
    this.stats.misses += 1;
    this.emit({ type: "miss", key: this.key, time: now });
  }

  lockBusy(): void {
    this.stats.lockWaits += 1;
    this.emit({ type: "lock-busy", key: this.key, time: this.now() });
  }

  lockWaited(waitedMs: number, outcome: "adopted" | "acquired" | "timeout"): void {
    this.emit({ type: "lock-waited", key: this.key, time: this.now(), waitedMs, outcome });
  }

  staleServed(record: CacheRecord, error: EventError): void {
    this.stats.staleServed += 1;
    this.emit({
      type: "stale-served",
      key: this.key,
      time: this.now(),
      accessKeyId: truncateAccessKeyId(record.accessKeyId),
      ...(record.expiration !== undefined && { expiration: record.expiration }),
      error,
    });
  }

  /** Static stability: `record` is served until `until` with the SDK's own warning. */
  extended(record: CacheRecord, until: number, error: EventError): void {
    this.stats.extended += 1;
    this.emit({
      type: "extended",
      key: this.key,
      time: this.now(),
      accessKeyId: truncateAccessKeyId(record.accessKeyId),
      expiration: until,
      error,
    });
    this.logger?.warn?.(
      "Attempting credential expiration extension due to a credential service availability issue. " +
        `A refresh of these credentials will be attempted after ${new Date(until).toISOString()}. ` +
        `(${LOG_PREFIX}, key "${this.key}": ${error.message})`,
    );
  }

  refreshStart(reason: RefreshReason, background: boolean): void {
    this.stats.sourceCalls += 1;
    this.emit({ type: "refresh-start", key: this.key, time: this.now(), reason, background });
    this.logger?.debug?.(`${LOG_PREFIX} fetching credentials for "${this.key}" (${reason})`);
  }

  /** One try at the source failed (the attempt may try again, or share the failure). */
  sourceFailure(): void {
    this.stats.sourceFailures += 1;
  }

  refreshSuccess(record: CacheRecord, durationMs: number): void {
    this.emit({
      type: "refresh-success",
      key: this.key,
      time: this.now(),
      accessKeyId: truncateAccessKeyId(record.accessKeyId),
      ...(record.expiration !== undefined && { expiration: record.expiration }),
      durationMs,
    });
  }

  /** A failed attempt, shared with every process: one event and one warning. */
  refreshFailure(error: EventError, retryAt: number, servingUntil: number | undefined): void {
    this.emit({
      type: "refresh-failure",
      key: this.key,
      time: this.now(),
      error,
      retryAt,
      background: servingUntil !== undefined,
    });
    this.warn(
      `refreshing "${this.key}" failed (${error.message}); ` +
        (servingUntil !== undefined
          ? `serving credentials valid until ${new Date(servingUntil).toISOString()}, `
          : "") +
        `next attempt (any process) at ${new Date(retryAt).toISOString()}`,
    );
  }

  stateIgnored(reason: string): void {
    this.emit({ type: "state-ignored", key: this.key, time: this.now(), reason });
    this.warn(`ignored an implausible refresh state under "${this.key}" (${reason})`);
  }
}
