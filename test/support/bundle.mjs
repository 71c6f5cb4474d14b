// A script bundled, with everything it imports, into a fresh directory under the temp dir
// that any local user can reach (0755): what a child running as another user (uid 65534)
// runs, so that it never needs to reach the checkout, which may lie under a private
// directory (a 0700 `mktemp -d`, /root). Used by the tests (otherUser.mjs) and the battery.
import { chmodSync, cpSync, mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { basename, dirname, join, sep } from "node:path";
import { build, buildSync } from "esbuild";

/**
 * Native addons cannot be bundled: they are copied beside the bundle, with what they load
 * at run time (not their build inputs), when the bundle imports them.
 */
const NATIVE = {
  "better-sqlite3": ["bindings", "file-uri-to-path"],
  sqlite3: ["bindings", "file-uri-to-path"],
};
const BUILD_ONLY = new Set(["deps", "src", "obj", "obj.target", "node_modules", "test", "docs"]);

const dirs = [];
const bundles = new Map();

/** Removes every bundle this process made (a vitest worker may be ended without an "exit" event). */
export function removeBundles() {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  bundles.clear();
}
process.once("exit", removeBundles);

function reachableDir() {
  const dir = mkdtempSync(join(tmpdir(), "credcache-other-user-"));
  dirs.push(dir);
  chmodSync(dir, 0o755);
  return dir;
}

/** `script` is a file, or `{ name, contents, resolveDir }` for code whose imports resolve from `resolveDir`. */
function options(script, dir) {
  const name = typeof script === "string" ? basename(script) : script.name;
  const esm = !name.endsWith(".cjs");
  return {
    ...(typeof script === "string"
      ? { entryPoints: [script] }
      : { stdin: { contents: script.contents, resolveDir: script.resolveDir, sourcefile: name } }),
    outfile: join(dir, name),
    bundle: true,
    platform: "node",
    target: "node20",
    format: esm ? "esm" : "cjs",
    // CommonJS dependencies inside an ES module bundle still call require().
    banner: esm
      ? {
          // Named apart from anything the bundle itself imports.
          js: 'import { createRequire as bundleCreateRequire } from "node:module"; const require = bundleCreateRequire(import.meta.url);',
        }
      : {},
    external: Object.keys(NATIVE),
    metafile: true,
    logLevel: "silent",
  };
}

/** Copies the native addons the bundle imports (and what they load) to `<dir>/node_modules`. */
function copyNatives(metafile, resolveFrom, dir) {
  const imported = new Set(
    Object.values(metafile.inputs).flatMap((input) =>
      input.imports.filter((i) => i.external && i.path in NATIVE).map((i) => i.path),
    ),
  );
  for (const name of imported) {
    const root = dirname(createRequire(resolveFrom).resolve(`${name}/package.json`));
    const packages = [[name, root]];
    // Each runtime dependency is found from the packages copied before it (pnpm keeps them apart).
    for (const dep of NATIVE[name]) {
      const found = packages
        .map(([, from]) => {
          try {
            return dirname(createRequire(join(from, "package.json")).resolve(`${dep}/package.json`));
          } catch {
            return undefined;
          }
        })
        .find(Boolean);
      if (found) packages.push([dep, found]);
    }
    for (const [pkg, source] of packages) {
      cpSync(source, join(dir, "node_modules", pkg), {
        recursive: true,
        dereference: true,
        filter: (path) => {
          const part = path.slice(source.length).split(sep).filter(Boolean);
          return !part.some((p) => BUILD_ONLY.has(p)) && !path.endsWith(".a");
        },
      });
    }
  }
}

function finish(script, result, dir) {
  const resolveFrom = typeof script === "string" ? script : join(script.resolveDir, "index.js");
  copyNatives(result.metafile, resolveFrom, dir);
  const outfile = options(script, dir).outfile;
  chmodSync(outfile, 0o644);
  return outfile;
}

const idOf = (script) => (typeof script === "string" ? script : `${script.resolveDir}\0${script.contents}`);

/** The bundle of `script` (made once per process): its path, in a directory uid 65534 can reach. */
export function reachableBundle(script) {
  const id = idOf(script);
  if (!bundles.has(id)) {
    const dir = reachableDir();
    bundles.set(
      id,
      build(options(script, dir)).then((result) => finish(script, result, dir)),
    );
  }
  return Promise.resolve(bundles.get(id));
}

/** {@link reachableBundle}, synchronously (for a caller that spawns synchronously, like the battery). */
export function reachableBundleSync(script) {
  const id = idOf(script);
  const made = bundles.get(id);
  if (typeof made === "string") return made;
  const dir = reachableDir();
  const path = finish(script, buildSync(options(script, dir)), dir);
  bundles.set(id, path);
  return path;
}
