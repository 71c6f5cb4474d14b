// What every battery child shares: umask, deadline, exit when the parent goes away,
// protocol messages to the parent, and logging that the secret scan sees.

import { createHash } from "node:crypto";
import { createInterface } from "node:readline";
import { inspect } from "node:util";
import { setting } from "../settings.mjs";

// Before anything creates a file.
if (setting("BATTERY_UMASK") !== undefined) process.umask(Number(setting("BATTERY_UMASK")));

/** A protocol message to the parent (one `@@{json}` line on stdout; pipes are synchronous on Linux). */
export function send(message) {
  process.stdout.write(`@@${JSON.stringify(message)}\n`);
}

const deadline = Number(setting("BATTERY_CHILD_DEADLINE"));
if (deadline) {
  setTimeout(
    () => {
      send({ t: "deadline" });
      process.exit(70);
    },
    Math.max(0, deadline - Date.now()),
  ).unref();
}

let handler;
let queue = Promise.resolve();
const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  let command;
  try {
    command = JSON.parse(line);
  } catch {
    return;
  }
  queue = queue.then(async () => {
    try {
      await handler?.(command);
    } catch (error) {
      send({ t: "crash", id: command.id, error: describeError(error) });
    }
  });
});
// The parent closed our stdin or died: nobody is listening any more.
lines.on("close", () => {
  queue.finally(() => process.exit(0));
});

/** Handles the parent's commands (JSON lines on stdin), one at a time, in order. */
export function onCommand(fn) {
  handler = fn;
}

export function describeError(error) {
  if (error instanceof Error) {
    return { name: error.name, message: error.message, code: error.code };
  }
  return { name: typeof error, message: String(error) };
}

const sha = (text) => createHash("sha256").update(String(text)).digest("hex").slice(0, 24);

/** What a child tells its parent about credentials: never the secrets, only their hashes. */
export function digest(identity) {
  return {
    accessKeyId: identity?.accessKeyId,
    secretSha: identity?.secretAccessKey ? sha(identity.secretAccessKey) : undefined,
    tokenSha: identity?.sessionToken ? sha(identity.sessionToken) : undefined,
    expiration: identity?.expiration?.getTime?.(),
  };
}

/** A logger and onEvent whose output goes to stderr, which the parent captures and scans. */
export function observer(label = "") {
  const events = [];
  const write = (line) => process.stderr.write(`${label}${line}\n`);
  const log =
    (level) =>
    (...args) =>
      write(`[${level}] ${args.map((a) => (typeof a === "string" ? a : inspect(a))).join(" ")}`);
  return {
    events,
    logger: { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") },
    onEvent(event) {
      events.push(event);
      write(`[event] ${JSON.stringify(event)}`);
    },
    /** util.inspect of anything that holds credentials, as console.log would print it. */
    inspect(value) {
      write(`[inspect] ${inspect(value, { depth: 6 })}`);
    },
    error(error) {
      write(`[error] ${error?.stack ?? error}`);
      write(`[inspect] ${inspect(error, { depth: 6 })}`);
    },
  };
}
