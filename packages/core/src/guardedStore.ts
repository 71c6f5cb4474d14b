import { CacheTimeoutError, hasErrorCode } from "./errors.js";
import { parseRecord } from "./record.js";
import { describeError } from "./redact.js";
import { parseRefreshState, type RefreshState, refreshStateKey } from "./refreshState.js";
import type { CacheEvent, CacheLock, CacheOperation, CacheRecord, CredentialCache, Logger } from "./types.js";

/**
 * Store calls race a deadline. One shared, unref'd sweeper checks every pending call
 * instead of a timer per call: a timer costs more than a whole memory-store hit.
 *
 * One clock, and not the injected one: a deadline bounds how long real I/O may take, so it
 * is set and checked by the monotonic clock the sweeper's timer runs on. The injected
 * clock is "now" for expirations and backoffs; tests freeze it or run it hours behind,
 * and a frozen one would turn a hanging store into a hanging resolution. Monotonic, so a
 * wall-clock step (NTP) neither fires every pending deadline at once nor postpones them.
 */
// process.hrtime, not performance.now(): the `performance` global loads perf_hooks (nine
// modules, about 1 ms) on first use, which every short-lived `credcache process` would pay.
const monotonicNow = () => Number(process.hrtime.bigint()) / 1e6;
interface Deadline {
  at: number;
  fail: () => void;
}
/** Codes of the errors a store may throw, matched by code: the store may use another copy of core. */
const RECORD = "ERR_CREDCACHE_RECORD";
const TIMEOUT = "ERR_CREDCACHE_TIMEOUT";

const deadlines = new Set<Deadline>();
let sweeper: NodeJS.Timeout | undefined;
const SWEEP_MS = 20;

function sweepDeadlines(): void {
  const now = monotonicNow();
  for (const deadline of deadlines) {
    if (deadline.at <= now) {
      deadlines.delete(deadline);
      // Timers run before I/O callbacks: after a stalled event loop, the reply may be
      // waiting in this very turn. Fail only if it is still missing after the I/O phase.
      setImmediate(deadline.fail);
    }
  }
  if (deadlines.size === 0 && sweeper) {
    clearInterval(sweeper);
    sweeper = undefined;
  }
}

function withDeadline<T>(call: Promise<T>, ms: number, timeoutError: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const deadline: Deadline = {
      at: monotonicNow() + ms,
      fail: () => {
        if (!settled) reject(timeoutError());
      },
    };
    deadlines.add(deadline);
    if (!sweeper) {
      sweeper = setInterval(sweepDeadlines, Math.max(1, Math.min(SWEEP_MS, ms)));
      sweeper.unref();
    }
    call.then(
      (value) => {
        settled = true;
        deadlines.delete(deadline);
        resolve(value);
      },
      (error) => {
        settled = true;
        deadlines.delete(deadline);
        reject(error);
      },
    );
  });
}

/** Where a guarded store reports what went wrong. */
export interface StoreReporting {
  key: string;
  logger: Logger | undefined;
  logPrefix: string;
  now(): number;
  emit(event: CacheEvent): void;
  secrets(): Iterable<string>;
}

/** The outcome of a lock attempt: held, busy (someone else), or no lock to be had. */
export type LockOutcome = { held: CacheLock } | { busy: true } | { unavailable: true };

/**
 * One call's view of the store. Once a read failed, the rest of that resolution reads
 * nothing more ("no L2 for that call") but still writes what it fetched: that replaces a
 * broken entry, and a store that refused the write says so again. Once a call timed out
 * (a hanging store), the resolution skips the store altogether. A new resolution starts
 * afresh.
 */
export interface StoreSession {
  down: boolean;
  readsDown?: boolean;
}

/**
 * The store as `fromCache` uses it: every call races `cacheTimeoutMs`, never throws,
 * and reports failures as events. Records and refresh state are validated on read.
 */
export class GuardedStore {
  readonly stateKey: string;
  private readonly inProcess: boolean;

  constructor(
    private readonly cache: CredentialCache,
    private readonly timeoutMs: number,
    private readonly report: StoreReporting,
  ) {
    this.stateKey = refreshStateKey(report.key);
    this.inProcess = cache.scope === "process";
  }

  /** Who can read the store (see `CredentialCache.scope`). */
  get scope(): CredentialCache["scope"] {
    return this.cache.scope;
  }

  private call<T>(operation: CacheOperation, run: () => Promise<T>): Promise<T> {
    let pending: Promise<T>;
    try {
      pending = Promise.resolve(run());
    } catch (error) {
      return Promise.reject(error);
    }
    // A deadline guards I/O; a store that lives in this process does none, and on a hit
    // the race would cost more than the store.
    if (this.inProcess) return pending;
    return withDeadline(pending, this.timeoutMs, () => new CacheTimeoutError(operation, this.timeoutMs));
  }

  private failed(operation: CacheOperation, error: unknown, session?: StoreSession): void {
    if (session) {
      if (hasErrorCode(error, TIMEOUT)) session.down = true;
      else session.readsDown = true;
    }
    const r = this.report;
    const described = describeError(error, r.secrets());
    r.logger?.warn?.(`${r.logPrefix} cache ${operation} failed for key "${r.key}": ${described.message}`);
    r.emit({ type: "cache-error", key: r.key, time: r.now(), operation, error: described });
  }

  /** The stored credentials, validated; garbage is removed and reported. */
  async readRecord(session: StoreSession): Promise<CacheRecord | undefined> {
    if (session.down || session.readsDown) return undefined;
    const key = this.report.key;
    let value: unknown;
    try {
      value = await this.call("get", () => this.cache.get(key));
    } catch (error) {
      if (hasErrorCode(error, RECORD)) {
        // The store itself found garbage under the key (and may have removed it already).
        const { reason } = error as { reason?: unknown };
        await this.reject(typeof reason === "string" ? reason : "rejected-by-store", session);
        return undefined;
      }
      this.failed("get", error, session);
      return undefined;
    }
    if (value === undefined || value === null) return undefined;
    const parsed = parseRecord(value);
    if (parsed.ok) {
      // A record written under another key (copied, or a namespace collision) is not ours.
      if (parsed.record.key === undefined || parsed.record.key === key) return parsed.record;
      await this.reject("wrong-key", session);
      return undefined;
    }
    await this.reject(parsed.reason, session);
    return undefined;
  }

  private async reject(reason: string, session: StoreSession): Promise<void> {
    const r = this.report;
    r.logger?.warn?.(`${r.logPrefix} rejected the record under "${r.key}" (${reason}); removing it`);
    r.emit({ type: "record-rejected", key: r.key, time: r.now(), reason });
    await this.remove(r.key, session);
  }

  async writeRecord(record: CacheRecord, ttlSeconds: number, session: StoreSession): Promise<void> {
    if (session.down) return;
    const key = this.report.key;
    try {
      await this.call("set", () => this.cache.set(key, { ...record }, ttlSeconds));
    } catch (error) {
      this.failed("set", error, session);
    }
  }

  async readState(session: StoreSession): Promise<RefreshState | undefined> {
    if (session.down || session.readsDown) return undefined;
    try {
      return parseRefreshState(await this.call("get", () => this.cache.get(this.stateKey)));
    } catch (error) {
      // A state the store itself refuses (say, sealed with another key) reads as none.
      if (!hasErrorCode(error, RECORD)) this.failed("get", error, session);
      return undefined;
    }
  }

  async writeState(state: RefreshState, ttlSeconds: number, session: StoreSession): Promise<void> {
    if (session.down) return;
    try {
      await this.call("set", () => this.cache.set(this.stateKey, state, ttlSeconds));
    } catch (error) {
      this.failed("set", error, session);
    }
  }

  async remove(key: string, session?: StoreSession): Promise<void> {
    if (session?.down) return;
    try {
      await this.call("remove", () => this.cache.remove(key));
    } catch (error) {
      this.failed("remove", error, session);
    }
  }

  /**
   * Try-lock. A slow lock on a store that otherwise answers is contention (a loaded host,
   * many processes): busy, so the caller waits for the holder instead of fetching too. A
   * store that fails outright cannot lock: unavailable.
   */
  async lock(name: string, ttlMs: number, session: StoreSession): Promise<LockOutcome> {
    const acquire = this.cache.acquireLock?.bind(this.cache);
    if (!acquire || session.down) return { unavailable: true };
    const pending = Promise.resolve().then(() => acquire(name, { ttlMs }));
    try {
      const held = await this.call("acquireLock", () => pending);
      if (!held) return { busy: true };
      const r = this.report;
      r.emit({ type: "lock-acquired", key: r.key, time: r.now(), takenOver: held.takenOver === true });
      return { held };
    } catch (error) {
      // A lock that arrives after we gave up must still be released.
      pending.then((late) => late?.release()).catch(() => {});
      const timedOut = hasErrorCode(error, TIMEOUT);
      // A slow lock alone does not mark the store down: it still answers reads.
      this.failed("acquireLock", error, timedOut ? undefined : session);
      return timedOut ? { busy: true } : { unavailable: true };
    }
  }

  async release(lock: CacheLock): Promise<void> {
    try {
      await this.call("release", () => lock.release());
    } catch (error) {
      this.failed("release", error);
    }
  }
}
