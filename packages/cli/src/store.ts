import { type AdapterPackage, createCache } from "@credcache/config";
import {
  type CredentialCache,
  ERROR_CODES,
  hasErrorCode,
  isRefreshStateKey,
  MissingAdapterError,
} from "@credcache/core";
import type { CacheSpec } from "./config.js";
import { CommandFailedError, exitCodeOf, messageOf, UsageError } from "./errors.js";

/**
 * Optional store capability: list the keys it holds (unexpired entries, as given to
 * `set`, without any namespace prefix). `inspect`, `clear` and `prune` use it when present.
 * An array is preferred; an async iterable is accepted too.
 */
export interface KeyListing {
  keys(): Promise<Iterable<string>> | AsyncIterable<string>;
}

/**
 * Optional store capability: delete expired entries (and lock leftovers) in one pass.
 * Resolves to the number of entries removed when the store knows it (anything else is
 * reported as "pruned").
 */
export interface Pruning {
  prune(): Promise<unknown>;
}

export function canListKeys(store: CredentialCache): store is CredentialCache & KeyListing {
  return typeof (store as Partial<KeyListing>).keys === "function";
}

export function canPrune(store: CredentialCache): store is CredentialCache & Pruning {
  return typeof (store as Partial<Pruning>).prune === "function";
}

/** Store calls in the CLI get this long before the command gives up. */
const STORE_TIMEOUT_MS = 5_000;

/** Runs a store call with a deadline; failures become a one-line {@link CommandFailedError}. */
export async function storeCall<T>(what: string, run: () => Promise<T> | T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      Promise.resolve().then(run),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(new CommandFailedError(`${what}: the store did not answer within ${STORE_TIMEOUT_MS} ms`)),
          STORE_TIMEOUT_MS,
        );
      }),
    ]);
  } catch (error) {
    if (error instanceof CommandFailedError) throw error;
    // Garbage under one key (the store removed it): the caller reports it in place.
    if (isRejectedRecord(error)) throw error;
    // A store that refuses to work (unsafe directory, unopenable database) is a setup problem.
    if (exitCodeOf(error) === 2) throw new UsageError(`${what}: ${messageOf(error)}`);
    throw new CommandFailedError(`${what}: ${messageOf(error)}`);
  } finally {
    clearTimeout(timer);
  }
}

/** A store's `get` refused what it found under a key (core's `CacheRecordError`). */
function isRejectedRecord(error: unknown): error is Error & { reason: string } {
  return hasErrorCode(error, ERROR_CODES.record);
}

/** What one key holds: its value (`undefined` when missing), or the reason the store refused it. */
export type EntryRead = { value: unknown } | { rejected: string };

/**
 * Reads one key. A record the store refuses (core's `CacheRecordError`) is removed here:
 * some stores remove it themselves on a failed read, but `encryptedCache` leaves a record
 * it cannot open (a rotated key) where it is.
 */
export async function readEntry(store: CredentialCache, key: string): Promise<EntryRead> {
  try {
    return { value: await storeCall(`reading "${key}"`, () => store.get(key)) };
  } catch (error) {
    if (!isRejectedRecord(error)) throw error;
    await storeCall(`removing "${key}"`, () => store.remove(key));
    return { rejected: error.reason };
  }
}

/**
 * The adapters, imported by name so that the build compiles them into the command: no
 * package lookup at run time, and a strict layout (a global pnpm install) cannot hide them.
 */
const ADAPTERS: Record<AdapterPackage, () => Promise<unknown>> = {
  "@credcache/memory": () => import("@credcache/memory"),
  "@credcache/fs": () => import("@credcache/fs"),
  "@credcache/sqlite": () => import("@credcache/sqlite"),
  "@credcache/keyv": () => import("@credcache/keyv"),
};

/** The native module the sqlite store needs: an optional peer of the CLI, not compiled in. */
const SQLITE_MODULE = "better-sqlite3";

async function importAdapter(name: string): Promise<unknown> {
  const load = ADAPTERS[name as AdapterPackage];
  if (load === undefined) return import(name);
  try {
    return await load();
  } catch (error) {
    const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
    if (
      (code === "MODULE_NOT_FOUND" || code === "ERR_MODULE_NOT_FOUND") &&
      String(message).includes(`'${SQLITE_MODULE}'`)
    ) {
      throw new MissingAdapterError(SQLITE_MODULE, "sqlite", { cause: error });
    }
    throw error;
  }
}

/** The store named by the spec. Config errors keep their core error code (exit 2). */
export function openStore(spec: CacheSpec): Promise<CredentialCache> {
  return createCache(spec.config, {
    ...(spec.store !== undefined && { store: spec.store }),
    importAdapter,
  });
}

/**
 * The store for a command that hands out credentials, or `undefined` when it is unusable
 * (an unsafe directory, an unopenable database): that must not stop the application, so
 * the command fetches without it, as core does when a store fails mid-flight, and says so.
 */
export async function openStoreOrWarn(
  spec: CacheSpec,
  warn: (line: string) => void,
): Promise<CredentialCache | undefined> {
  try {
    return await openStore(spec);
  } catch (error) {
    if (!hasErrorCode(error, ERROR_CODES.unavailable)) throw error;
    warn(`cache ${spec.label} is unusable, working without it: ${messageOf(error)}`);
    return undefined;
  }
}

/** Closes a store without letting a hung or failing close delay the exit. */
export async function closeStore(store: CredentialCache | undefined): Promise<void> {
  if (!store?.close) return;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      store.close(),
      new Promise<void>((done) => {
        timer = setTimeout(done, 2_000);
      }),
    ]);
  } catch {
    // Closing is best effort; the command's result is already decided.
  } finally {
    clearTimeout(timer);
  }
}

/** The store's keys, or `undefined` when it cannot list them. */
export async function listKeys(store: CredentialCache): Promise<string[] | undefined> {
  if (!canListKeys(store)) return undefined;
  return storeCall("listing keys", async () => {
    const listed = store.keys();
    const keys: string[] = [];
    if (Symbol.asyncIterator in listed) {
      for await (const key of listed as AsyncIterable<string>) keys.push(key);
    } else {
      for (const key of await listed) keys.push(key);
    }
    // Refresh state (`<key>#refresh`) belongs to its key's entry, not a record of its own.
    return keys.filter((key) => typeof key === "string" && key !== "" && !isRefreshStateKey(key));
  });
}

export interface KeySet {
  keys: string[];
  /** True when the store listed its keys; otherwise only well-known and requested keys. */
  listed: boolean;
}

/** Keys to look at: the store's own list (when it has one), plus requested and well-known keys. */
export async function collectKeys(
  store: CredentialCache,
  requested: readonly string[],
  wellKnown: readonly string[],
): Promise<KeySet> {
  const listed = await listKeys(store);
  const keys = [...new Set([...(listed ?? []), ...requested, ...wellKnown])];
  return { keys, listed: listed !== undefined };
}
