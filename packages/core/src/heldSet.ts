import type { AwsCredentialIdentity } from "@smithy/types";
import { type RefreshPolicy, type Timeline, timelineOf } from "./policy.js";
import { toIdentity } from "./record.js";
import type { CacheRecord } from "./types.js";

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
export function heldSet(
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
