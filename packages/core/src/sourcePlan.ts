import type { AwsCredentialIdentityProvider } from "@smithy/types";
import { type CachedCredentialProvider, type FromCacheInit, fromCache } from "./fromCache.js";

/** `fromCache` options a preset accepts; the preset supplies `provider`, `key` and `source`. */
export type PresetCacheOptions = Omit<FromCacheInit, "provider" | "key" | "source"> & {
  /** Overrides the key the preset builds. Give each principal its own. */
  key?: string;
};

/**
 * A source worked out before any fetch: the SDK provider that fetches, the key its sets are
 * cached under, and the label stored with them (`credcache inspect` shows it). What the CLI
 * and the cached presets are both built from.
 */
export interface SourcePlan {
  /** `env`, `profile`, `web-identity`, `container`, `imds`, `chain`. */
  source: string;
  /** `undefined`: never stored (static keys from the environment pass through). */
  key: string | undefined;
  provider: AwsCredentialIdentityProvider;
}

/**
 * The plan cached with `fromCache` (a caller's `key` wins). A plan without a key is served
 * through an in-process memo only: its credentials never reach the store.
 */
export function cachePlan(plan: SourcePlan, options: PresetCacheOptions): CachedCredentialProvider {
  const { key, cache, ...rest } = options;
  if (plan.key === undefined && key === undefined) {
    return fromCache({ ...rest, source: plan.source, provider: plan.provider });
  }
  return fromCache({
    ...rest,
    ...(cache !== undefined && { cache }),
    key: key ?? plan.key,
    source: plan.source,
    provider: plan.provider,
  });
}
