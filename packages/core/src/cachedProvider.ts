import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from "@smithy/types";
import type { CacheStats } from "./types.js";

/** Options the SDK passes when it calls a credential provider. */
export interface CachedProviderOptions {
  /** Ignore L1 and L2 freshness and fetch from the source. */
  forceRefresh?: boolean;
  [property: string]: unknown;
}

/** What {@link fromCache} returns: an SDK credential provider plus cache controls. */
export interface CachedCredentialProvider extends AwsCredentialIdentityProvider {
  (options?: CachedProviderOptions): Promise<AwsCredentialIdentity>;
  /**
   * Drops the cached credentials from L1 and the store, and the shared failure count.
   * The store entry is removed only if it still holds the same access key id, so a
   * racing refresh by another process is not undone.
   */
  invalidate(): Promise<void>;
  /** Counters since creation. */
  stats(): CacheStats;
  /**
   * Cancels the proactive timer; later calls are answered from what is held or stored
   * and never start a refresh. Resolves when a refresh already under way has written its
   * result and released its lock, so a short-lived process can close its store after it
   * and leave no lock behind; waits at most `lockTtlMs`.
   */
  close(): Promise<void>;
}
