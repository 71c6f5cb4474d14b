import type { AwsCredentialIdentity } from "@smithy/types";
import { redactedPrototype } from "./redact.js";
import type { CacheRecord } from "./types.js";

/** Largest string a record field may hold; an STS session token is a few KiB. */
const MAX_FIELD_CHARS = 16 * 1024;
/** Largest serialized record `parseRecord` will look at when handed a string; a store may refuse a larger value unread. */
export const MAX_RECORD_CHARS = 64 * 1024;

export type ParseResult = { ok: true; record: CacheRecord } | { ok: false; reason: string };

/** Builds the record `fromCache` stores for credentials returned by a source. @internal */
export function toRecord(
  identity: AwsCredentialIdentity,
  cachedAt: number,
  source?: string,
  key?: string,
): CacheRecord {
  const expiration = identity.expiration?.getTime();
  const { accountId, credentialScope } = identity as { accountId?: string; credentialScope?: string };
  return withRedactedInspect({
    v: 1 as const,
    accessKeyId: identity.accessKeyId,
    secretAccessKey: identity.secretAccessKey,
    ...(identity.sessionToken && { sessionToken: identity.sessionToken }),
    ...(accountId && { accountId }),
    ...(credentialScope && { credentialScope }),
    ...(expiration !== undefined && Number.isFinite(expiration) && { expiration }),
    cachedAt,
    ...(source && { source }),
    ...(key && { key }),
  });
}

/** The SDK identity for a record (`expiration` back to a `Date`). @internal */
export function toIdentity(record: CacheRecord): AwsCredentialIdentity {
  return withRedactedInspect({
    accessKeyId: record.accessKeyId,
    secretAccessKey: record.secretAccessKey,
    ...(record.sessionToken && { sessionToken: record.sessionToken }),
    ...(record.accountId && { accountId: record.accountId }),
    ...(record.credentialScope && { credentialScope: record.credentialScope }),
    ...(record.expiration !== undefined && { expiration: new Date(record.expiration) }),
  });
}

/** The same data on the redacting prototype (see `redactedPrototype`). */
function withRedactedInspect<T extends object>(data: T): T {
  return Object.assign(Object.create(redactedPrototype) as T, data);
}

function own(value: object, name: string): unknown {
  return Object.hasOwn(value, name) ? (value as Record<string, unknown>)[name] : undefined;
}

function isPlainObject(value: unknown): value is object {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** The string fields of a record, and whether each is required. */
const STRING_FIELDS: ReadonlyArray<readonly [string, boolean]> = [
  ["accessKeyId", true],
  ["secretAccessKey", true],
  ["sessionToken", false],
  ["accountId", false],
  ["credentialScope", false],
  ["source", false],
  ["key", false],
];

/**
 * Validates anything read back from a store. A store is untrusted input: the
 * result is either a fresh, well-formed record (built from own properties only,
 * so `__proto__` tricks cannot leak through) or a reason for rejecting it.
 * Never throws.
 */
export function parseRecord(value: unknown): ParseResult {
  let data = value;
  if (typeof data === "string") {
    if (data.length > MAX_RECORD_CHARS) return { ok: false, reason: "oversized" };
    try {
      data = JSON.parse(data);
    } catch {
      return { ok: false, reason: "unparseable" };
    }
  }
  if (!isPlainObject(data)) return { ok: false, reason: "not-an-object" };
  if (own(data, "v") !== 1) return { ok: false, reason: "wrong-version" };

  const record: Record<string, unknown> = Object.create(redactedPrototype);
  record.v = 1;
  for (const [name, required] of STRING_FIELDS) {
    const field = own(data, name);
    if (field === undefined || field === null) {
      if (required) return { ok: false, reason: `missing-${name}` };
      continue;
    }
    if (typeof field !== "string" || (required && field.length === 0)) {
      return { ok: false, reason: `bad-${name}` };
    }
    if (field.length > MAX_FIELD_CHARS) return { ok: false, reason: "oversized" };
    if (field.length > 0) record[name] = field;
  }
  const expiration = own(data, "expiration");
  if (expiration !== undefined && expiration !== null) {
    if (typeof expiration !== "number" || !Number.isFinite(expiration) || expiration <= 0) {
      return { ok: false, reason: "bad-expiration" };
    }
    record.expiration = expiration;
  }
  const cachedAt = own(data, "cachedAt");
  if (typeof cachedAt !== "number" || !Number.isFinite(cachedAt) || cachedAt < 0) {
    return { ok: false, reason: "bad-cachedAt" };
  }
  record.cachedAt = cachedAt;
  return { ok: true, record: record as unknown as CacheRecord };
}
