// Another local user (attack 1), on the fs store. The victim runs as uid 65534; the attacker
// is root (this process), who prepares the traps. Refused: a cache directory pre-created by
// another uid, a group- or world-writable one, a symlinked one; an entry that is a symlink to
// /etc/passwd or to another user's file, a hard link to another user's file, another user's
// regular file, a lease file that is a symlink. Each time the victim reads nothing through the
// trap (planted credentials are never served), writes nothing through it (targets unchanged,
// no secret in them), and still gets credentials from the source.

import { createHash } from "node:crypto";
import {
  chmodSync,
  chownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { startImdsEmulator } from "@credcache/imds-emulator";
import { expect, fakeCredentials, NOBODY, requireRoot, sha, startGroup } from "../harness.mjs";
import { fsEntryPath } from "../stores.mjs";

const g = startGroup("local-user");
if (!requireRoot(g)) await new Promise(() => {}); // finish() exits
const imds = await startImdsEmulator();
const env = { AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url };
const KEY = `local-user-${g.runId}`;

/** An entry file with credentials the attacker wants the victim to use. */
function plantedEnvelope() {
  const creds = fakeCredentials("planted");
  g.secrets([creds.secretAccessKey, creds.sessionToken]);
  const value = { v: 1, ...creds, expiration: Date.now() + 6 * 3_600_000, cachedAt: Date.now() };
  return { text: JSON.stringify({ key: KEY, value }), accessKeyId: creds.accessKeyId };
}

/** Names, types, modes, owners and content hashes of everything under `dir`. */
function snapshot(dir) {
  const out = [];
  const walk = (at) => {
    let names;
    try {
      names = readdirSync(at).sort();
    } catch {
      return;
    }
    for (const name of names) {
      const file = join(at, name);
      const st = lstatSync(file);
      let hash = "";
      if (st.isFile()) hash = createHash("sha256").update(readFileSync(file)).digest("hex").slice(0, 16);
      out.push(`${file.slice(dir.length)} ${st.mode.toString(8)} ${st.uid} ${hash}`);
      if (st.isDirectory()) walk(file);
    }
  };
  walk(dir);
  return out.join("\n");
}

function containsSecret(file) {
  let text;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return false;
  }
  return imds.secretsIssued().some((s) => {
    for (let i = 0; i + 20 <= s.length; i += 20) if (text.includes(s.slice(i, i + 20))) return true;
    return false;
  });
}

let nextId = 0;
/** The victim: a new process as uid 65534 resolving KEY with the fs store at `dir`. */
async function victim(dir) {
  const child = g.spawn("resolver.mjs", {
    args: [JSON.stringify({ store: { kind: "fs", dir }, lockWaitMs: 2000 })],
    env,
    uid: NOBODY,
    label: "victim",
  });
  await child.waitType("ready", 30_000);
  const id = ++nextId;
  child.send({ cmd: "resolve", id, key: KEY });
  const result = await child.waitFor(
    (m) => m.t === "resolved" && m.id === id,
    30_000,
    "the victim's credentials",
  );
  await child.stop();
  g.secrets(imds.secretsIssued());
  return result;
}

/** The victim got real credentials from the source, and said why it refused the store. */
function judge(result, planted, refusal) {
  expect(result.ok, () => `the victim got an error: ${result.error?.name}: ${result.error?.message}`);
  expect(result.creds.accessKeyId !== planted, "the victim used the attacker's planted credentials");
  const issued = new Set(imds.secretsIssued().map((s) => sha(s).slice(0, 24)));
  expect(
    result.creds.accessKeyId === imds.currentCredentials().accessKeyId && issued.has(result.creds.secretSha),
    "the victim's credentials did not come from the source",
  );
  if (refusal) {
    expect(
      result.problems.some((p) => refusal.test(p)),
      () => `no cache-error saying ${refusal}: ${result.problems.join(" | ") || "(none)"}`,
    );
  }
}

function dirOwnedBy(path, uid, mode) {
  mkdirSync(path, { recursive: true });
  chownSync(path, uid, uid);
  chmodSync(path, mode);
}

const base = g.tmp("traps", { mode: 0o755 });

// ---- the cache directory ----

const dirTraps = [
  { name: "pre-created by another uid (root, 0755)", uid: 0, mode: 0o755, refusal: /owned by uid 0/ },
  {
    name: "pre-created by another uid (root, 0777)",
    uid: 0,
    mode: 0o777,
    refusal: /owned by uid 0|writable/,
  },
  { name: "victim's own but group-writable (0770)", uid: NOBODY, mode: 0o770, refusal: /writable by group/ },
  { name: "victim's own but world-writable (0707)", uid: NOBODY, mode: 0o707, refusal: /writable by others/ },
  {
    name: "victim's own but 1777 like /tmp",
    uid: NOBODY,
    mode: 0o1777,
    refusal: /writable by group and others/,
  },
];
await g.check("fs: unsafe cache directories are refused", async (c) => {
  for (const [i, trap] of dirTraps.entries()) {
    await c.trial(async () => {
      const dir = join(base, `dir-${i}`);
      dirOwnedBy(dir, trap.uid, trap.mode);
      const planted = plantedEnvelope();
      const entry = await fsEntryPath(dir, KEY);
      writeFileSync(entry, planted.text, { mode: 0o644 });
      chownSync(entry, trap.uid, trap.uid);
      const before = snapshot(dir);
      const result = await victim(dir);
      judge(result, planted.accessKeyId, trap.refusal);
      expect(snapshot(dir) === before, `${trap.name}: the victim changed the directory`);
      expect(!containsSecret(entry), `${trap.name}: a secret was written into the trap`);
    });
  }
  c.note = dirTraps.map((t) => t.name).join("; ");
});

await g.check("fs: a symlinked cache directory is refused", async (c) => {
  const targets = [
    { name: "to the victim's own proper directory", uid: NOBODY, mode: 0o700 },
    { name: "to an attacker's world-writable directory", uid: 0, mode: 0o777 },
  ];
  for (const [i, target] of targets.entries()) {
    await c.trial(async () => {
      const real = join(base, `real-${i}`);
      dirOwnedBy(real, target.uid, target.mode);
      const link = join(base, `link-${i}`);
      symlinkSync(real, link);
      const planted = plantedEnvelope();
      writeFileSync(await fsEntryPath(real, KEY), planted.text, { mode: 0o600 });
      chownSync(await fsEntryPath(real, KEY), target.uid, target.uid);
      const before = snapshot(real);
      const result = await victim(link);
      judge(result, planted.accessKeyId, /symbolic link/);
      expect(snapshot(real) === before, `symlink ${target.name}: the victim wrote through it`);
    });
  }
  c.note = targets.map((t) => t.name).join("; ");
});

// ---- entry and lease files in the victim's own, proper directory ----

await g.check("fs: trapped entry and lease files are neither read nor written through", async (c) => {
  const passwd = readFileSync("/etc/passwd");
  const decoyDir = join(base, "attacker");
  dirOwnedBy(decoyDir, 0, 0o755);
  const traps = [
    {
      name: "entry symlink to /etc/passwd",
      plant: async (dir) => symlinkSync("/etc/passwd", await fsEntryPath(dir, KEY)),
      target: "/etc/passwd",
      refusal: /symbolic link/,
    },
    {
      name: "entry symlink to another user's world-writable file holding credentials",
      plant: async (dir, decoy) => symlinkSync(decoy, await fsEntryPath(dir, KEY)),
      refusal: /symbolic link/,
    },
    {
      name: "entry hard link to another user's file holding credentials",
      plant: async (dir, decoy) => linkSync(decoy, await fsEntryPath(dir, KEY)),
      refusal: /owned by uid 0|hard links/,
    },
    {
      name: "entry that is another user's regular file holding credentials",
      plant: async (dir, decoy) => {
        const entry = await fsEntryPath(dir, KEY);
        writeFileSync(entry, readFileSync(decoy), { mode: 0o644 });
        chownSync(entry, 0, 0);
      },
      refusal: /owned by uid 0/,
    },
    {
      name: "lease file symlink to another user's world-writable file",
      plant: async (dir, decoy) =>
        symlinkSync(decoy, (await fsEntryPath(dir, KEY)).replace(/\.json$/, ".lease")),
    },
  ];
  for (const [i, trap] of traps.entries()) {
    await c.trial(async () => {
      const dir = join(base, `own-${i}`);
      dirOwnedBy(dir, NOBODY, 0o700);
      const planted = plantedEnvelope();
      const decoy = join(decoyDir, `decoy-${i}.json`);
      writeFileSync(decoy, planted.text);
      chmodSync(decoy, 0o666);
      await trap.plant(dir, decoy);
      const target = trap.target ?? decoy;
      const before = readFileSync(target);
      const result = await victim(dir);
      judge(result, planted.accessKeyId, trap.refusal);
      expect(readFileSync(target).equals(before), `${trap.name}: the target was changed`);
      expect(!containsSecret(target), `${trap.name}: a secret was written into the target`);
      // The victim's own entry is now a regular file of its own (the trap is gone, not followed).
      const entry = lstatSync(await fsEntryPath(dir, KEY));
      expect(
        entry.isFile() && entry.uid === NOBODY && entry.nlink === 1,
        `${trap.name}: the entry is not the victim's own file afterwards`,
      );
    });
  }
  expect(readFileSync("/etc/passwd").equals(passwd), "/etc/passwd changed");
  c.note = traps.map((t) => t.name).join("; ");
});

g.secrets(imds.secretsIssued());

await imds.close();
g.finish();
