import { defineConfig } from "tsup";

export default defineConfig({
  entry: ["src/index.ts"],
  format: ["esm", "cjs"],
  // composite is for editors and `tsc -b`; the bundled declarations are built standalone.
  dts: { compilerOptions: { composite: false } },
  clean: true,
  sourcemap: true,
  target: "node20",
});
