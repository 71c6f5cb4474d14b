// Loaded by plain `node` in the suite's child processes: imports the BUILT package (run `npx tsup` first).
import { basename } from "node:path";
import { createRedisCache } from "@credcache/keyv";

/** Parent and children get the same namespace from the shared location, so they share Redis keys. */
export default ({ location }) =>
  createRedisCache({ url: "redis://127.0.0.1:6379", namespace: `cc-test-${basename(location)}` });
