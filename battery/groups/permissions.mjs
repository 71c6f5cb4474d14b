// Permissions (attack 2): every file and directory a store creates (entries, temp files, lease
// files, lock mutex directories, the SQLite database and its -wal/-shm, created parent
// directories) is 0600 (files) or 0700 (directories), whatever the umask: 000, 002, 022, 077.

import { join } from "node:path";
import { expect, NOBODY, requireRoot, startGroup } from "../harness.mjs";

const g = startGroup("permissions");
if (!requireRoot(g)) await new Promise(() => {}); // finish() exits
const UMASKS = [0o000, 0o002, 0o022, 0o077];

for (const kind of ["fs", "sqlite"]) {
  await g.check(
    `${kind}: created files 0600, directories 0700, under umask ${UMASKS.map((u) => u.toString(8).padStart(3, "0")).join("/")}`,
    async (c) => {
      const bad = [];
      const seenWhat = new Set();
      for (const umask of UMASKS) {
        await c.trial(async () => {
          // Run as an ordinary user in a directory it owns: what a real deployment does.
          const root = g.tmp(`u${umask.toString(8)}`, { owner: NOBODY, mode: 0o755 });
          const spec =
            kind === "fs"
              ? { kind, root, dir: join(root, "nested", "deeper", "cache"), key: "perm-key" }
              : { kind, root, path: join(root, "nested", "deeper", "cache.db"), key: "perm-key" };
          const child = g.spawn("perm-probe.mjs", {
            args: [JSON.stringify(spec)],
            uid: NOBODY,
            umask,
            label: `${kind}-umask-${umask.toString(8)}`,
          });
          const { entries } = await child.waitType("modes", 30_000);
          expect(entries.length > 0, "nothing was reported");
          for (const e of entries) {
            seenWhat.add(e.what);
            if (e.missing) continue;
            const want = e.type === "dir" ? 0o700 : 0o600;
            if (e.mode !== want) {
              bad.push(
                `umask ${umask.toString(8).padStart(3, "0")}: ${e.what} ${e.path.slice(root.length)} is ${e.mode.toString(8)}, want ${want.toString(8)}`,
              );
            }
          }
          if (kind === "fs") {
            for (const what of ["temp file (at rename)", "lock mutex dir (at removal)"]) {
              expect(
                entries.some((e) => e.what === what && !e.missing),
                `the ${what} was never observed`,
              );
            }
          } else {
            for (const suffix of ["cache.db", "cache.db-wal", "cache.db-shm"]) {
              expect(
                entries.some((e) => e.path.endsWith(suffix) && !e.missing),
                `${suffix} was never observed`,
              );
            }
          }
          const mine = bad.filter((b) => b.startsWith(`umask ${umask.toString(8).padStart(3, "0")}`));
          expect(mine.length === 0, () => mine.slice(0, 3).join("; "));
        });
      }
      c.note = `checked: ${[...seenWhat].join(", ")}`;
    },
  );
}

g.finish();
