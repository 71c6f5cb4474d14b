// The worker's credential provider, built from config alone: the SDK's instance-metadata
// provider, either by itself (`none`, the baseline) or cached by credcache in the store
// the config names.

/** @typedef {import("./options.mjs").Backend} Backend */
/** @typedef {import("@credcache/core").CredentialCache} CredentialCache */
/** @typedef {import("@credcache/core").CacheEvent} CacheEvent */

/**
 * Counts store calls in flight and locks held, so a short-lived process can wait for a
 * background refresh to finish (and release its lock) before it closes the store. A lock
 * abandoned by a process that exited mid-refresh would make every other process wait for
 * it to go stale.
 *
 * @param {CredentialCache} store
 */
function trackActivity(store) {
  let busy = 0;
  /** @type {Array<() => void>} */
  let waiters = [];
  const settle = () => {
    if (busy !== 0) return;
    const ready = waiters;
    waiters = [];
    for (const wake of ready) wake();
  };
  /** @template T @param {() => Promise<T>} run @returns {Promise<T>} */
  const during = async (run) => {
    busy++;
    try {
      return await run();
    } finally {
      busy--;
      settle();
    }
  };
  /** @type {CredentialCache} */
  const tracked = {
    get: (key) => during(() => store.get(key)),
    set: (key, value, ttl) => during(() => store.set(key, value, ttl)),
    remove: (key) => during(() => store.remove(key)),
    ...(store.acquireLock && {
      acquireLock: (key, opts) =>
        during(async () => {
          const lock = await /** @type {NonNullable<CredentialCache["acquireLock"]>} */ (
            store.acquireLock
          ).call(store, key, opts);
          if (!lock) return lock;
          busy++; // held until released
          let released = false;
          return {
            ...lock,
            release: async () => {
              if (released) return;
              released = true;
              try {
                await lock.release();
              } finally {
                busy--;
                settle();
              }
            },
          };
        }),
    }),
    ...(store.close && {
      close: () => /** @type {NonNullable<CredentialCache["close"]>} */ (store.close).call(store),
    }),
  };

  /**
   * Resolves once no store call is in flight and no lock is held across two turns of the
   * event loop (a refresh chains its steps through microtasks, so a quiet turn means it
   * has finished), or after `timeoutMs`.
   */
  const idle = async (timeoutMs = 3_000) => {
    const deadline = Date.now() + timeoutMs;
    for (let quiet = 0; quiet < 2 && Date.now() < deadline; ) {
      await new Promise((wake) => setImmediate(wake));
      if (busy === 0) {
        quiet++;
        continue;
      }
      quiet = 0;
      await new Promise((wake) => {
        const timer = setTimeout(wake, Math.max(0, deadline - Date.now()));
        waiters.push(() => {
          clearTimeout(timer);
          wake(undefined);
        });
      });
    }
  };
  return { tracked, idle };
}

/**
 * A short, secret-free name of the backend, for reports and logs.
 *
 * @param {Backend} backend
 * @param {typeof import("@credcache/core")} [core]
 */
export function describeBackend(backend, core) {
  if (backend.kind === "none") return "none";
  if (backend.kind === "url") return core ? core.redactUrl(backend.url) : backend.url.split(":")[0];
  const name = backend.store ?? /** @type {{ default?: string }} */ (backend.config).default;
  let driver = "?";
  try {
    driver = core
      ? core.resolveStoreConfig(/** @type {any} */ (backend.config), backend.store).driver
      : driver;
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
 *   cached: boolean,
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
      cached: false,
      stats: () => undefined,
      close: async () => {},
    };
  }
  const core = await import("@credcache/core");
  const store =
    backend.kind === "url"
      ? await core.createCache(backend.url)
      : await core.createCache(/** @type {any} */ (backend.config), {
          ...(backend.store !== undefined && { store: backend.store }),
        });
  const { tracked, idle } = trackActivity(store);
  const provider = core.fromCachedInstanceMetadata({
    cache: tracked,
    ...sdkOptions,
    ...(refresh.advisoryRefreshMs !== undefined && { advisoryRefreshMs: refresh.advisoryRefreshMs }),
    ...(refresh.mandatoryRefreshMs !== undefined && { mandatoryRefreshMs: refresh.mandatoryRefreshMs }),
    ...(refresh.cacheTimeoutMs !== undefined && { cacheTimeoutMs: refresh.cacheTimeoutMs }),
    ...(logger && { logger }),
    ...(onEvent && { onEvent }),
  });
  return {
    provider,
    label: describeBackend(backend, core),
    cached: true,
    stats: () => provider.stats(),
    close: async () => {
      // A background refresh may still be writing: let it finish and release its lock.
      await idle();
      provider.close();
      await store.close?.();
    },
  };
}
