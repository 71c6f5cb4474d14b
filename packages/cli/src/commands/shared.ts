import type { CredentialCache } from "@credcache/core";
import { type CacheSpec, resolveCacheSpec, type StoreFlags } from "../config.js";
import type { CommandIo } from "../io.js";
import { parseSource, presetKey } from "../sources.js";
import { closeStore, openStore } from "../store.js";

/** Flags of every command that opens a store. */
export const STORE_FLAGS = { cache: "string", config: "string", store: "string" } as const;

/** Opens the configured store, runs `body`, closes the store. */
export async function withStore<T>(
  flags: StoreFlags,
  io: CommandIo,
  body: (store: CredentialCache, spec: CacheSpec) => Promise<T>,
): Promise<T> {
  const spec = resolveCacheSpec(flags, io.env, io.cwd);
  const store = await openStore(spec);
  try {
    return await body(store, spec);
  } finally {
    await closeStore(store);
  }
}

/** `--key` values plus the preset keys of `--source` values. */
export function requestedKeys(keys: readonly string[], sources: readonly string[], io: CommandIo): string[] {
  const presetKeys = sources.map((text) => presetKey(parseSource(text), io.env));
  return [...keys, ...presetKeys.filter((key) => key !== undefined)];
}
