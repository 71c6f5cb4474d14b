import type { AwsCredentialIdentity } from "@smithy/types";
import { CredentialsUnavailableError } from "./errors.js";
import { classifyFetched } from "./policy.js";
import { toRecord } from "./record.js";
import type { CacheRecord, EventError } from "./types.js";

/** Errors for a source that answered with credentials that cannot be used (expired on arrival, none). */
const unusableAnswers = new WeakSet<object>();
function unusable(error: Error): Error {
  unusableAnswers.add(error);
  return error;
}

/** The source did answer, with nothing usable: asking again soon gives the same. */
export function isUnusableAnswer(error: unknown): boolean {
  return typeof error === "object" && error !== null && unusableAnswers.has(error);
}

/**
 * A source's answer as a record to hold, as {@link classifyFetched} judges it at `now`:
 * `fresh` (hold and store it), or `extended` by the SDK's static stability (serve it until
 * `until` with `warning`, never store it). No credentials, or expired ones nobody extended,
 * throw `CredentialsUnavailableError` ({@link isUnusableAnswer}).
 */
export type SourceAnswer =
  | { kind: "fresh"; record: CacheRecord }
  | { kind: "extended"; record: CacheRecord; until: number; warning: EventError };

export function judgeAnswer(
  identity: AwsCredentialIdentity | undefined,
  now: number,
  sourceLabel: string | undefined,
  key: string,
): SourceAnswer {
  if (!identity || typeof identity.accessKeyId !== "string" || typeof identity.secretAccessKey !== "string") {
    throw unusable(new CredentialsUnavailableError("credcache: the source returned no credentials"));
  }
  const original = (identity as { originalExpiration?: Date }).originalExpiration?.getTime();
  const fetched = classifyFetched(now, identity.expiration?.getTime(), original);
  if (fetched.kind === "extended") {
    const expiredAt = new Date(fetched.expiredAt);
    return {
      kind: "extended",
      record: toRecord({ ...identity, expiration: expiredAt }, now, sourceLabel, key),
      until: fetched.until,
      warning: {
        name: "CredentialsExtended",
        message: `the source returned credentials that expired at ${expiredAt.toISOString()}`,
      },
    };
  }
  if (fetched.kind === "expired") {
    throw unusable(
      new CredentialsUnavailableError(
        `credcache: the source returned credentials that expired at ${new Date(fetched.expiredAt).toISOString()}`,
      ),
    );
  }
  return { kind: "fresh", record: toRecord(identity, now, sourceLabel, key) };
}
