import { readFileSync } from "node:fs";
import { defineConfig, type Options } from "tsup";
import { base } from "../../tsup.base.js";

const { version } = JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8")) as {
  version: string;
};

const shared: Options = {
  target: base.target,
  sourcemap: base.sourcemap,
  // `credcache --version` without reading package.json at run time.
  env: { CREDCACHE_CLI_VERSION: version },
  // credcache's own packages are compiled in: a warm `credcache process` spent more of its
  // start-up resolving and loading a tree of packages than doing its work. Third-party
  // packages stay outside: the SDK (loaded only for a fetch), better-sqlite3 (native, and
  // optional), and the small dependencies of the stores.
  noExternal: [/^@credcache\//],
};

export default defineConfig([
  { ...base, clean: false, ...shared },
  {
    ...shared,
    // The command is one CommonJS file: no ESM loader to start, no module graph to resolve.
    entry: { bin: "src/bin.ts" },
    format: ["cjs"],
    splitting: false,
  },
]);
