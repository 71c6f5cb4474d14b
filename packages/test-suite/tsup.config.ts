import { packageConfig } from "../../tsup.base.js";

export default packageConfig({
  // child.ts is the cross-process runner that the suite starts with plain node.
  entry: ["src/index.ts", "src/child.ts"],
  // The CJS build finds child.js through import.meta.url too.
  shims: true,
});
