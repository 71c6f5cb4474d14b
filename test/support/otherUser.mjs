// Children that run as another local user (uid 65534) to prove a store refuses what that
// user planted. Such a child cannot reach a checkout under a private directory (a 0700
// `mktemp -d`, /root), so it never runs from the checkout: what it runs is bundled, with
// everything it imports, into a fresh directory that user can reach. Where no child can
// run as that user at all, the tests skip with one line saying why (and fail under CI).
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { build } from "esbuild";
import { describe, it } from "vitest";

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

function asOtherUser(register, name, body, timeout) {
  if (OTHER_USER_MISSING === undefined) return register(name, body, timeout);
  if (process.env.CI) {
    return it(`${name}: needs a child as uid 65534`, () => {
      throw new Error(`cannot run a child as another user, and CI is set: ${OTHER_USER_MISSING}`);
    });
  }
  console.warn(`skipping "${name}": ${OTHER_USER_MISSING}`);
  return register.skip(name, body, timeout);
}

/** `describe(name, body)` where a child can run as uid 65534; skipped with a reason (failing under CI) where not. */
export function describeAsOtherUser(name, body) {
  asOtherUser(describe, name, body);
}

/** `it(name, fn, timeout)` where a child can run as uid 65534; skipped with a reason (failing under CI) where not. */
export function itAsOtherUser(name, fn, timeout) {
  asOtherUser(it, name, fn, timeout);
}

const bundles = new Map();
const dirs = [];
process.once("exit", () => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/**
 * Bundles a script and everything it imports (the built packages, the AWS SDK) into one
 * file in a fresh 0755 directory under the temp dir, and resolves with its path: a child
 * running as another user can run it wherever the checkout lies. `script` is a file, or
 * `{ name, contents, resolveDir }` for code whose imports resolve from `resolveDir`.
 * Native addons stay external (no child of these tests loads one).
 */
export function reachableBundle(script) {
  const id = typeof script === "string" ? script : `${script.resolveDir}\0${script.contents}`;
  if (!bundles.has(id)) bundles.set(id, bundle(script));
  return bundles.get(id);
}

async function bundle(script) {
  const name = typeof script === "string" ? basename(script) : script.name;
  const dir = mkdtempSync(join(tmpdir(), "credcache-other-user-"));
  dirs.push(dir);
  chmodSync(dir, 0o755);
  const outfile = join(dir, name);
  const esm = !name.endsWith(".cjs");
  await build({
    ...(typeof script === "string"
      ? { entryPoints: [script] }
      : { stdin: { contents: script.contents, resolveDir: script.resolveDir, sourcefile: name } }),
    outfile,
    bundle: true,
    platform: "node",
    target: "node20",
    format: esm ? "esm" : "cjs",
    // CommonJS dependencies inside an ES module bundle still call require().
    banner: esm
      ? { js: 'import { createRequire } from "node:module"; const require = createRequire(import.meta.url);' }
      : {},
    external: ["better-sqlite3", "sqlite3"],
    logLevel: "silent",
  });
  chmodSync(outfile, 0o644);
  return outfile;
}
