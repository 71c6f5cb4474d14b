// Directories with a given owner and mode, for the tests of which directories a store trusts.
import { chmodSync, chownSync, mkdirSync } from "node:fs";
import { join } from "node:path";

/** A directory `name` in `parent`, owned by `uid` (and group `gid`), with exactly `mode`. */
export function dirOf(parent, name, uid, mode, gid = uid) {
  const dir = join(parent, name);
  mkdirSync(dir);
  chownSync(dir, uid, gid);
  chmodSync(dir, mode);
  return dir;
}
