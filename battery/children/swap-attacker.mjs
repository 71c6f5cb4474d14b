// The ancestor-swap attacker: another user who can write to the parent of the victim's
// store directory moves that directory aside and puts a symlink to a directory of its own
// in its place, then removes the symlink again, as fast as it can, until told to stop (or
// its stdin closes). A victim that makes its directory again when it is missing gets it
// swapped again.
//
// argv[2]: JSON { target, attackerDir }
// -> { t: "ready" }; on { cmd: "stop" } -> { t: "stopped", swaps, rounds }

import { renameSync, symlinkSync, unlinkSync } from "node:fs";
import { onCommand, send } from "./lib.mjs";

const { target, attackerDir } = JSON.parse(process.argv[2]);
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
    renameSync(target, `${target}.aside-${rounds}`);
  } catch {
    return; // not ours to move (a sticky parent), or not there
  }
  try {
    symlinkSync(attackerDir, target);
    swaps += 1;
    for (let i = 0; i < 500; i++); // leave the symlink up a moment
    unlinkSync(target);
  } catch {}
}

send({ t: "ready" });
while (running) {
  for (let i = 0; i < 100; i++) swapOnce();
  // Let the stop command (and a closed stdin) in.
  await new Promise((resolve) => setImmediate(resolve));
}
