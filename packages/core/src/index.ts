export { DEFAULT_CACHE_KEY, PROCESS_DEFAULTS, REFRESH_DEFAULTS, SDK_REFRESH_WINDOWS } from "./defaults.js";
export { type EncryptedCacheOptions, encryptedCache } from "./encryptedCache.js";
export {
  CacheArgumentError,
  CacheConfigError,
  CacheRecordError,
  CacheTimeoutError,
  CacheUnavailableError,
  CredcacheError,
  CredentialsUnavailableError,
  ERROR_CODES,
  type ErrorCode,
  hasErrorCode,
  MissingAdapterError,
} from "./errors.js";
export {
  type CachedCredentialProvider,
  type CachedProviderOptions,
  type FromCacheInit,
  fromCache,
} from "./fromCache.js";
export {
  type HostIdentity,
  type HostIdentityKind,
  type HostIdentityOptions,
  readHostIdentity,
} from "./hostIdentity.js";
export {
  backoffMs,
  type Decision,
  decide,
  NO_SHARED_STATE,
  type RefreshPolicy,
  recheckAt,
  type SharedView,
  supersedes,
  type Timeline,
  timelineOf,
  windowAt,
} from "./policy.js";
export {
  type AssumeRoleParams,
  type CachedContainerMetadataInit,
  type CachedIniInit,
  type CachedInstanceMetadataInit,
  type CachedTemporaryCredentialsInit,
  containerMetadataKey,
  DEFAULT_SESSION_NAME,
  fromCachedContainerMetadata,
  fromCachedIni,
  fromCachedInstanceMetadata,
  fromCachedTemporaryCredentials,
  type IniKeyOptions,
  iniKey,
  instanceMetadataKey,
  type KeyEnv,
  type KeyOptions,
  type PresetCacheOptions,
  type TemporaryCredentialsKeyOptions,
  temporaryCredentialsKey,
} from "./presets.js";
export { type ParseResult, parseRecord } from "./record.js";
export { describeError, describeValue, RecentSecrets, redactUrl, truncateAccessKeyId } from "./redact.js";
export {
  isRefreshStateKey,
  parseRefreshState,
  type RefreshState,
  refreshStateKey,
} from "./refreshState.js";
export { assertCacheKey, assertLockTtl, expiresAtFromTtl, MAX_KEY_LENGTH, newLockToken } from "./store.js";
export type {
  AwsCredentialIdentity,
  AwsCredentialIdentityProvider,
  CacheEvent,
  CacheEventType,
  CacheLock,
  CacheOperation,
  CacheRecord,
  CacheStats,
  Clock,
  CredentialCache,
  EventError,
  Logger,
  RefreshReason,
  RefreshWindow,
} from "./types.js";
/** Which refresh window a record is in, for tools such as `credcache inspect`. */
export { windowOfRecord } from "./windows.js";
/** The largest record, in characters: a store may refuse a larger value unread. */
export { MAX_RECORD_CHARS } from "./record.js";

// Plumbing that fromCache, the CLI and the benchmarks share; not part of the public API.

/** @internal */
export { toIdentity, toRecord } from "./record.js";
/** @internal */
export { scrub } from "./redact.js";
