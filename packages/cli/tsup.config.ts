import { readFileSync } from "node:fs";
import { defineConfig } from "tsup";

const { version } = JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8")) as {
  version: string;
};

export default defineConfig({
  entry: ["src/index.ts", "src/bin.ts"],
  format: ["esm", "cjs"],
  // composite is for editors and `tsc -b`; the bundled declarations are built standalone.
  dts: { compilerOptions: { composite: false } },
  clean: true,
  sourcemap: true,
  target: "node20",
  // `credcache --version` without reading package.json at run time.
  env: { CREDCACHE_CLI_VERSION: version },
});
