import { existsSync, readFileSync, realpathSync } from "node:fs";
import { createRequire } from "node:module";
import { isAbsolute, join } from "node:path";
import { pathToFileURL } from "node:url";
import { CacheConfigError, MissingAdapterError } from "@credcache/core";
import type { CreateCacheOptions } from "./createCache.js";
import type { AdapterPackage } from "./drivers.js";

/**
 * True when `error` says that `pkg` itself cannot be found: not when the adapter was found
 * and one of its own dependencies is missing (that error must reach the user as it is).
 */
function isAdapterMissing(error: unknown, pkg: string): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (code !== "ERR_MODULE_NOT_FOUND" && code !== "MODULE_NOT_FOUND") return false;
  const text = String(message);
  return text.includes(`'${pkg}'`);
}

/**
 * The application's entry module (`node app.js` gives `app.js`), with symlinks resolved as
 * Node resolves the main module. Undefined under `node -e`, a REPL, or stdin.
 */
function applicationEntry(): string | undefined {
  const entry = process.argv[1];
  if (!entry || !isAbsolute(entry)) return undefined;
  try {
    return realpathSync(entry);
  } catch {
    return undefined;
  }
}

/** Imports `pkg` as the application would: found in the node_modules above its entry module, ESM build first. */
async function importFromApplication(pkg: string, entry: string): Promise<unknown> {
  const require = createRequire(entry);
  // A package need not export ./package.json: look for it where Node's lookup would.
  const dir = (require.resolve.paths(pkg) ?? [])
    .map((modules) => join(modules, pkg))
    .find((candidate) => existsSync(join(candidate, "package.json")));
  if (dir === undefined) return require(pkg); // throws MODULE_NOT_FOUND naming pkg
  const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
    exports?: { ".": { import?: string | { default?: string } } };
    module?: string;
  };
  const esm = manifest.exports?.["."]?.import;
  const file = (typeof esm === "string" ? esm : esm?.default) ?? manifest.module;
  return import(pathToFileURL(file ? join(dir, file) : require.resolve(pkg)).href);
}

/**
 * Loads an adapter package: the module passed in `adapters`, else `importAdapter` (or a
 * plain import from beside `@credcache/config`), else the copy the application's entry module
 * would import. Never from the working directory: a `node_modules` planted there is not
 * the application's. A missing dependency of a found adapter is thrown as it is.
 */
export async function loadAdapter(
  pkg: AdapterPackage,
  driver: string,
  options: Pick<CreateCacheOptions, "adapters" | "importAdapter">,
): Promise<Record<string, unknown>> {
  const given = options.adapters?.[pkg];
  if (given !== undefined) {
    if (typeof given !== "object" || given === null) {
      throw new CacheConfigError(
        `adapters["${pkg}"] must be the module, e.g. { "${pkg}": await import("${pkg}") }`,
      );
    }
    return given as Record<string, unknown>;
  }
  let firstError: unknown;
  try {
    return (await (options.importAdapter ? options.importAdapter(pkg) : import(pkg))) as Record<
      string,
      unknown
    >;
  } catch (error) {
    if (!isAdapterMissing(error, pkg)) throw error;
    firstError = error;
  }
  const entry = applicationEntry();
  if (entry !== undefined) {
    try {
      return (await importFromApplication(pkg, entry)) as Record<string, unknown>;
    } catch (error) {
      if (!isAdapterMissing(error, pkg)) throw error;
    }
  }
  throw new MissingAdapterError(pkg, driver, { cause: firstError });
}
