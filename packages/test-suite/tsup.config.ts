import { defineConfig } from "tsup";

export default defineConfig({
  // child.ts is the cross-process runner that the suite starts with plain node.
  entry: ["src/index.ts", "src/child.ts"],
  format: ["esm", "cjs"],
  // composite is for editors and `tsc -b`; the bundled declarations are built standalone.
  dts: { compilerOptions: { composite: false } },
  clean: true,
  sourcemap: true,
  target: "node20",
  // The CJS build finds child.js through import.meta.url too.
  shims: true,
});
