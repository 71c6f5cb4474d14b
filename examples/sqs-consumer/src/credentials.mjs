// The worker's credential provider, built from config alone: the SDK's instance-metadata
// provider, either by itself (`none`, the baseline) or cached by credcache in the store
// the config names; or (`serve`) the SDK's container provider, answered by `credcache serve`.

/** @typedef {import("./options.mjs").Backend} Backend */
/** @typedef {import("@credcache/core").CacheEvent} CacheEvent */

/**
 * A short, secret-free name of a cached backend, for reports and logs.
 *
 * @param {Exclude<Backend, { kind: "none" } | { kind: "serve" }>} backend
 * @param {typeof import("@credcache/core")} core
 * @param {typeof import("@credcache/config")} config
 */
function describeBackend(backend, core, config) {
  if (backend.kind === "url") return core.redactUrl(backend.url);
  const name = backend.store ?? /** @type {{ default?: string }} */ (backend.config).default;
  let driver = "?";
  try {
    driver = config.resolveStoreConfig(/** @type {any} */ (backend.config), backend.store).driver;
  } catch {
    // createCache reports the config error itself.
  }
  return `config:${name} (${driver})`;
}

/**
 * Builds the credential provider for a backend.
 *
 * @param {object} init
 * @param {Backend} init.backend
 * @param {{ timeout?: number, maxRetries?: number }} [init.imds] passed to the SDK's `fromInstanceMetadata`
 * @param {{ advisoryRefreshMs?: number, mandatoryRefreshMs?: number, cacheTimeoutMs?: number }} [init.refresh]
 *   fromCache tuning (refresh windows, store call timeout)
 * @param {import("@smithy/types").Logger} [init.logger]
 * @param {(event: CacheEvent) => void} [init.onEvent]
 * @returns {Promise<{
 *   provider: import("@smithy/types").AwsCredentialIdentityProvider,
 *   label: string,
 *   stats: () => import("@credcache/core").CacheStats | undefined,
 *   close: () => Promise<void>,
 * }>}
 */
export async function createCredentials({ backend, imds = {}, refresh = {}, logger, onEvent }) {
  const sdkOptions = {
    ...(imds.timeout !== undefined && { timeout: imds.timeout }),
    ...(imds.maxRetries !== undefined && { maxRetries: imds.maxRetries }),
  };
  if (backend.kind === "none") {
    const { fromInstanceMetadata } = await import("@aws-sdk/credential-providers");
    return {
      provider: fromInstanceMetadata({ ...sdkOptions, ...(logger && { logger }) }),
      label: "none",
      stats: () => undefined,
      close: async () => {},
    };
  }
  if (backend.kind === "serve") {
    // What any application on the host does with no credcache code at all: the SDK's
    // container provider reads AWS_CONTAINER_CREDENTIALS_FULL_URI and the token file.
    const { fromHttp } = await import("@aws-sdk/credential-providers");
    return {
      provider: fromHttp({ timeout: sdkOptions.timeout ?? 5_000, ...(logger && { logger }) }),
      label: "serve",
      stats: () => undefined,
      close: async () => {},
    };
  }
  const core = await import("@credcache/core");
  const config = await import("@credcache/config");
  const store =
    backend.kind === "url"
      ? await config.createCache(backend.url)
      : await config.createCache(/** @type {any} */ (backend.config), {
          ...(backend.store !== undefined && { store: backend.store }),
        });
  const provider = core.fromCachedInstanceMetadata({
    cache: store,
    ...sdkOptions,
    ...(refresh.advisoryRefreshMs !== undefined && { advisoryRefreshMs: refresh.advisoryRefreshMs }),
    ...(refresh.mandatoryRefreshMs !== undefined && { mandatoryRefreshMs: refresh.mandatoryRefreshMs }),
    ...(refresh.cacheTimeoutMs !== undefined && { cacheTimeoutMs: refresh.cacheTimeoutMs }),
    ...(logger && { logger }),
    ...(onEvent && { onEvent }),
  });
  return {
    provider,
    label: describeBackend(backend, core, config),
    stats: () => provider.stats(),
    close: async () => {
      // Waits for a background refresh to write and release its lock: a lock left by a
      // process that exited mid-refresh would make the others wait for it to expire.
      await provider.close();
      await store.close?.();
    },
  };
}
