// The conformance suite's cross-process module: children load it with plain node,
// so it imports the BUILT package (cd packages/fs && npx tsup).
import { join } from "node:path";
import { fileCache } from "@credcache/fs";

export default ({ location }) => fileCache({ dir: join(location, "cache") });
