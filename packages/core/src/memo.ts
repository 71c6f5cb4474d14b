import type { AwsCredentialIdentity } from "@smithy/types";
import type { GuardedStore, StoreSession } from "./guardedStore.js";
import { adopts, type RefreshPolicy, type Timeline, timelineOf, windowAt } from "./policy.js";
import { toIdentity } from "./record.js";
import type { Report } from "./report.js";
import type { CacheRecord, Clock, EventError } from "./types.js";

/** A set held in L1 (this process's memo) with its timeline. */
export interface Held {
  record: CacheRecord;
  identity: AwsCredentialIdentity;
  t: Timeline;
  /** Not yet served since it was read from the store: the next hit counts as L2. */
  fromStore: boolean;
}

/**
 * What L1 keeps of a record: the SDK identity handed out and the timeline the policy asks
 * with. `extendedUntil` marks a set kept past expiry by static stability: it is handed out
 * with that expiration, so the SDK client comes back when the extension ends.
 */
function heldSet(
  record: CacheRecord,
  policy: RefreshPolicy,
  fromStore: boolean,
  extendedUntil?: number,
): Held {
  return {
    record,
    identity: toIdentity(extendedUntil === undefined ? record : { ...record, expiration: extendedUntil }),
    t: timelineOf(record, policy, extendedUntil),
    fromStore,
  };
}

/**
 * L1: the one set this process holds, and the three ways a set gets there: held after a
 * fetch, loaded on a cold start (valid or expired: an expired one feeds static
 * stability), adopted from the store when the policy says it spares a fetch.
 */
export class Memo {
  held: Held | undefined;
  /** The one read of the store that cold callers share. */
  private loading: Promise<CacheRecord | undefined> | undefined;

  constructor(
    private readonly policy: RefreshPolicy,
    private readonly store: GuardedStore | undefined,
    private readonly report: Report,
    private readonly clock: Clock,
    /** Called whenever the held set changes: the proactive timer follows it. */
    private readonly changed: () => void,
  ) {}

  hold(record: CacheRecord, fromStore: boolean, extendedUntil?: number): Held {
    this.report.remember(record);
    this.held = heldSet(record, this.policy, fromStore, extendedUntil);
    this.changed();
    return this.held;
  }

  /** Static stability: keep `record` until `until` with the SDK's warning, in this process only. */
  extend(record: CacheRecord, until: number, warning: EventError): Held {
    const held = this.hold(record, false, until);
    this.report.extended(record, until, warning);
    return held;
  }

  /** A cold start: one read of the store for every caller, held whether valid or expired. */
  async load(session: StoreSession): Promise<void> {
    if (!this.store) return;
    this.loading ??= this.store.readRecord(session);
    const stored = await this.loading;
    this.loading = undefined;
    if (stored && !this.held) this.hold(stored, true);
  }

  /** Holds the stored record when the policy says it spares this caller a fetch ({@link adopts}). */
  async adopt(session: StoreSession, blocking: boolean): Promise<Held | undefined> {
    if (!this.store) return undefined;
    const record = await this.store.readRecord(session);
    if (!record) return undefined;
    const now = this.clock.now();
    const t = timelineOf(record, this.policy);
    if (!adopts(now, { record, t }, this.held, blocking)) return undefined;
    const adopted = this.hold(record, false);
    this.report.hit(now, "l2", windowAt(t, now));
    return adopted;
  }

  /** Drops the held set; returns its access key id. */
  drop(): string | undefined {
    const dropped = this.held?.record.accessKeyId;
    this.held = undefined;
    return dropped;
  }
}
