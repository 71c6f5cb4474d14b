// Run by plain node in the conformance suite's child processes: imports the BUILT package
// (run `npx tsup` first). Children use the real clock, so a dead holder's lease runs out in real time.
import { join } from "node:path";
import { sqliteCache } from "@credcache/sqlite";

export default ({ location }) => sqliteCache({ path: join(location, "cache.db") });
