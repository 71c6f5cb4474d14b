import { defineConfig, type Options } from "tsup";

/** What every package's build shares: ESM and CJS for Node 20, bundled declarations, source maps. */
export const base = {
  entry: ["src/index.ts"],
  format: ["esm", "cjs"],
  // composite is for editors and `tsc -b`; the bundled declarations are built standalone.
  dts: { compilerOptions: { composite: false } },
  clean: true,
  sourcemap: true,
  target: "node20",
} satisfies Options;

/** A package's tsup config: the base, with the package's own entries or options on top. */
export function packageConfig(options: Options = {}) {
  return defineConfig({ ...base, ...options });
}
