export {
  type CachedNodeProviderChainInit,
  fromCachedNodeProviderChain,
  type NodeProviderChainSourceInit,
  nodeProviderChainSource,
} from "./chain.js";
export {
  DEFAULT_CACHE_KEY,
  lockWaitMsFor,
  PROCESS_DEFAULTS,
  REFRESH_CONSTANTS,
  REFRESH_DEFAULTS,
  SDK_REFRESH_WINDOWS,
} from "./defaults.js";
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
  type AssumeRoleParams,
  containerMetadataKey,
  DEFAULT_SESSION_NAME,
  type IniKeyOptions,
  iniKey,
  instanceMetadataKey,
  type KeyEnv,
  type KeyOptions,
  type TemporaryCredentialsKeyOptions,
  temporaryCredentialsKey,
  tokenIdentity,
  type WebIdentityKeyOptions,
  type WebIdentityParams,
  webIdentityKey,
} from "./keys.js";
export { processIsGone, thisMachine } from "./liveness.js";
export {
  adopts,
  afterFailure,
  backoffMs,
  busyPauseUntil,
  classifyFetched,
  type Decision,
  decide,
  type FailureStep,
  type FetchedSet,
  fencedBy,
  holderMayTryAgain,
  holderPauseMs,
  holderTries,
  mayStore,
  NO_SHARED_STATE,
  type Patience,
  patienceLeft,
  plausibleView,
  pollDelayMs,
  type RefreshPolicy,
  recheckAt,
  recordTtlSeconds,
  type SharedView,
  stateTtlSeconds,
  supersedes,
  type TimedSet,
  type Timeline,
  timelineOf,
  timerAt,
  windowAt,
} from "./policy.js";
export {
  type CachedContainerMetadataInit,
  type CachedIniInit,
  type CachedInstanceMetadataInit,
  type CachedTemporaryCredentialsInit,
  containerMetadataSource,
  fromCachedContainerMetadata,
  fromCachedIni,
  fromCachedInstanceMetadata,
  fromCachedTemporaryCredentials,
  instanceMetadataSource,
  type MetadataSourceInit,
  type PresetCacheOptions,
} from "./presets.js";
/** The largest record, in characters: a store may refuse a larger value unread. */
export { MAX_RECORD_CHARS, type ParseResult, parseRecord } from "./record.js";
export { describeError, describeValue, RecentSecrets, redactUrl, truncateAccessKeyId } from "./redact.js";
export {
  isRefreshStateKey,
  parseRefreshState,
  type RefreshState,
  refreshStateKey,
} from "./refreshState.js";
export { cachePlan, type SourcePlan } from "./sourcePlan.js";
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
export {
  type CachedTokenFileInit,
  type CachedWebIdentityInit,
  fromCachedTokenFile,
  fromCachedWebIdentity,
  type TokenFileSourceInit,
  tokenFileSource,
  type WebTokenSourceInit,
  webTokenSource,
} from "./webIdentity.js";
/** Which refresh window a record is in, for tools such as `credcache inspect`. */
export { expiresAtOfRecord, type RecordWindows, windowOfRecord } from "./windows.js";

// Plumbing that fromCache, the CLI and the benchmarks share; not part of the public API.

/** @internal */
export { toIdentity, toRecord } from "./record.js";
/** @internal */
export { scrub } from "./redact.js";
