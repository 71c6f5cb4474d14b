import { statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import Database from "better-sqlite3";

/** Where better-sqlite3's install (prebuilt or compiled) puts its addon, from its `lib/`. */
const ADDON_FROM_LIB = join("..", "build", "Release", "better_sqlite3.node");

let addon: string | null | undefined;

/**
 * The path of better-sqlite3's compiled addon, beside the very better-sqlite3 module this
 * package imported, for `new Database(path, { nativeBinding })`. Without it, the first
 * `new Database` of a process loads the `bindings` package, which finds the addon by
 * walking a stack trace and trying a dozen paths: about 1.5 ms of a CLI's start.
 *
 * Found through the module cache (the entry whose exports are the imported `Database`),
 * not from this file's location: this code also runs inlined into another package's
 * bundle, in ESM and CJS builds alike. Undefined when that module or its addon is not
 * where a normal install puts them (a custom build, an ESM bundle of better-sqlite3):
 * `new Database` then finds the addon the way it always does.
 */
export function betterSqliteAddon(): string | undefined {
  if (addon === undefined) addon = findAddon() ?? null;
  return addon ?? undefined;
}

function findAddon(): string | undefined {
  const lib = libDirectory();
  if (lib === undefined) return undefined;
  const file = join(lib, ADDON_FROM_LIB);
  return statSync(file, { throwIfNoEntry: false })?.isFile() ? file : undefined;
}

/** The `lib/` directory of the better-sqlite3 whose `Database` this module imported. */
function libDirectory(): string | undefined {
  for (const loaded of Object.values(createRequire("/").cache)) {
    if (loaded?.exports === Database) return dirname(loaded.filename);
  }
  // Not in the cache: a CJS bundle holds better-sqlite3's JS (one file loads faster than
  // its fourteen), so its addon is the one of the package that the bundle's `require` finds.
  try {
    return join(dirname(require.resolve("better-sqlite3/package.json")), "lib");
  } catch {
    return undefined; // ESM, which has no `require`; or better-sqlite3 is not installed there
  }
}
