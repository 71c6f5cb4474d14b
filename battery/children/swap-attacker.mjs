// The ancestor-swap attacker: another user who can write to the parent of the victim's
// store directory swaps that directory for a symlink to a directory of its own and back,
// as fast as it can, until told to stop (or its stdin closes).
//
// argv[2]: JSON { target, attackerDir }
// -> { t: "ready" }; on { cmd: "stop" } -> { t: "stopped", swaps, rounds }

import { renameSync, symlinkSync, unlinkSync } from "node:fs";
import { onCommand, send } from "./lib.mjs";

const { target, attackerDir } = JSON.parse(process.argv[2]);
const aside = `${target}.aside`;
let swaps = 0;
let rounds = 0;
let running = true;

onCommand(async (command) => {
  if (command.cmd === "stop") {
    running = false;
    send({ t: "stopped", swaps, rounds });
  }
});

function swapOnce() {
  rounds += 1;
  try {
    renameSync(target, aside);
  } catch {
    return; // not ours to move (a sticky parent), or not there
  }
  try {
    symlinkSync(attackerDir, target);
    swaps += 1;
    for (let i = 0; i < 500; i++); // leave the symlink up a moment
    unlinkSync(target);
  } catch {}
  try {
    renameSync(aside, target);
  } catch {}
}

send({ t: "ready" });
while (running) {
  for (let i = 0; i < 100; i++) swapOnce();
  // Let the stop command (and a closed stdin) in.
  await new Promise((resolve) => setImmediate(resolve));
}
