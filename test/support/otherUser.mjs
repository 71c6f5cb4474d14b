// Children that run as another local user (uid 65534) to prove a store refuses what that
// user planted. Such a child cannot reach a checkout under a private directory (a 0700
// `mktemp -d`, /root), so it never runs from the checkout: it runs a bundle
// (reachableBundle, bundle.mjs) in a directory that user can reach. Where no child can run
// as that user at all, the tests skip with one line saying why (and fail under CI).
import { spawnSync } from "node:child_process";
import { afterAll, describe, it } from "vitest";
import { removeBundles } from "./bundle.mjs";
import { registerNeeding } from "./needs.mjs";

export { reachableBundle, reachableBundleSync } from "./bundle.mjs";

// After the file that imported this: its bundles go with it.
afterAll(removeBundles);

/** The other user: `nobody` on Debian. */
export const OTHER_UID = 65534;

function whyNoOtherUser() {
  if (process.getuid?.() !== 0) return "not running as root: no child can be started as uid 65534";
  const setpriv = spawnSync("setpriv", ["--version"], { stdio: "ignore" });
  if (setpriv.error) return "setpriv (util-linux) is not on PATH";
  const node = spawnSync(process.execPath, ["-e", "0"], { uid: OTHER_UID, gid: OTHER_UID, stdio: "ignore" });
  if (node.status !== 0) return `uid 65534 cannot run ${process.execPath}`;
  return undefined;
}

/** Why children cannot run as uid 65534 here, or undefined when they can. */
export const OTHER_USER_MISSING = whyNoOtherUser();

/** `describe(name, body)` where a child can run as uid 65534; skipped with a reason (failing under CI) where not. */
export function describeAsOtherUser(name, body) {
  registerNeeding(OTHER_USER_MISSING, describe, name, body);
}

/** `it(name, fn, timeout)` where a child can run as uid 65534; skipped with a reason (failing under CI) where not. */
export function itAsOtherUser(name, fn, timeout) {
  registerNeeding(OTHER_USER_MISSING, it, name, fn, timeout);
}
