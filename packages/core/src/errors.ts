/**
 * Every `code` a {@link CredcacheError} carries, in one place: match on these, never on
 * string literals or classes.
 *
 * @example
 * ```ts
 * import { ERROR_CODES, hasErrorCode } from "@credcache/core";
 * if (hasErrorCode(error, ERROR_CODES.config)) process.exitCode = 2;
 * ```
 */
export const ERROR_CODES = Object.freeze({
  config: "ERR_CREDCACHE_CONFIG",
  missingAdapter: "ERR_CREDCACHE_MISSING_ADAPTER",
  timeout: "ERR_CREDCACHE_TIMEOUT",
  unavailable: "ERR_CREDCACHE_UNAVAILABLE",
  argument: "ERR_CREDCACHE_ARGUMENT",
  credentials: "ERR_CREDCACHE_CREDENTIALS",
  record: "ERR_CREDCACHE_RECORD",
} as const);

/** One of {@link ERROR_CODES}. */
export type ErrorCode = (typeof ERROR_CODES)[keyof typeof ERROR_CODES];

/** Base class of every error credcache throws on purpose. `code` is stable; match on it. */
export class CredcacheError extends Error {
  readonly code: ErrorCode;
  constructor(message: string, code: ErrorCode, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Malformed configuration: a bad URL, an unknown driver, an option out of range. */
export class CacheConfigError extends CredcacheError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ERROR_CODES.config, options);
  }
}

/** The adapter package a driver needs is not installed. `packageName` says which to install. */
export class MissingAdapterError extends CredcacheError {
  readonly packageName: string;
  constructor(packageName: string, driver: string, options?: { cause?: unknown }) {
    super(
      `The "${driver}" cache driver needs the package ${packageName}, which is not installed. ` +
        `Install it: npm install ${packageName}`,
      ERROR_CODES.missingAdapter,
      options,
    );
    this.packageName = packageName;
  }
}

/** A store call took longer than `cacheTimeoutMs`. */
export class CacheTimeoutError extends CredcacheError {
  constructor(operation: string, ms: number) {
    super(`cache ${operation} did not answer within ${ms} ms`, ERROR_CODES.timeout);
  }
}

/** A store refused to work: unsafe directory, unusable database file, and so on. */
export class CacheUnavailableError extends CredcacheError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ERROR_CODES.unavailable, options);
  }
}

/** A store method was called with a bad argument (empty key, negative TTL, ...). */
export class CacheArgumentError extends CredcacheError {
  constructor(message: string) {
    super(message, ERROR_CODES.argument);
  }
}

/**
 * Credentials could not be had: the source failed with nothing valid cached, or it
 * returned credentials that had already expired. Like the SDK's own
 * `CredentialsProviderError` it carries `tryNextLink: false`, so a provider chain stops
 * here instead of silently trying other credentials.
 */
export class CredentialsUnavailableError extends CredcacheError {
  readonly tryNextLink = false;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ERROR_CODES.credentials, options);
  }
}

/**
 * Whether `error` is credcache's error with this `code`. Matched by code, not by class: an
 * adapter may bring another copy of core (a CommonJS application whose adapter loads as
 * ESM, or two versions of core in one tree), and its classes are not this copy's.
 */
export function hasErrorCode(error: unknown, code: string): boolean {
  return typeof error === "object" && error !== null && (error as { code?: unknown }).code === code;
}

/**
 * A stored value that cannot be a record (unparseable, oversized, not an envelope). A
 * store throws it from `get()`; `fromCache` reports it as `record-rejected`, removes the
 * entry and asks the source. The message never quotes the value: it may hold a secret.
 */
export class CacheRecordError extends CredcacheError {
  /** A short machine-readable reason, e.g. `unparseable`, `oversized`, `authentication-failed`. */
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message, ERROR_CODES.record);
    this.reason = reason;
  }
}
