import { exitCodeOf, messageOf, oneLine, UsageError } from "./errors.js";
import type { CliIo, CommandIo } from "./io.js";

/** A subcommand module: parses its own flags, returns the exit code. */
interface Command {
  run(argv: readonly string[], io: CommandIo): Promise<number>;
}

// Loaded on demand: `credcache process` never parses the code of serve, inspect, clear or prune.
const COMMANDS: Record<string, () => Promise<Command>> = {
  process: () => import("./commands/process.js"),
  serve: () => import("./commands/serve.js"),
  inspect: () => import("./commands/inspect.js"),
  clear: () => import("./commands/clear.js"),
  prune: () => import("./commands/prune.js"),
};

const COMMAND_LIST = Object.keys(COMMANDS).join(", ");

/**
 * Runs the `credcache` command line and resolves to its exit code: 0 ok, 1 the command
 * failed, 2 usage or configuration error. Never rejects; every failure is one line on
 * `io.stderr` and never contains a secret.
 *
 * @example
 * ```ts
 * const out: string[] = [];
 * const code = await main(["process", "--source", "imds", "--cache", "file:///var/cache/credcache"], {
 *   stdout: { write: (s: string) => out.push(s) },
 *   stderr: process.stderr,
 *   env: process.env,
 * });
 * ```
 */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  const commandIo: CommandIo = { ...io, cwd: io.cwd ?? process.cwd() };
  try {
    if (name === undefined || name === "--help" || name === "-h" || name === "help") {
      const topic = name === "help" ? rest[0] : undefined;
      if (topic !== undefined && !Object.hasOwn(COMMANDS, topic)) {
        throw new UsageError(`unknown command "${topic}"; the commands are ${COMMAND_LIST}`);
      }
      const { helpText } = await import("./help.js");
      // Bare `credcache` is a usage mistake: help goes to stderr with exit 2.
      (name === undefined ? io.stderr : io.stdout).write(helpText(topic));
      return name === undefined ? 2 : 0;
    }
    if (name === "--version" || name === "version") {
      io.stdout.write(`${process.env.CREDCACHE_CLI_VERSION ?? "0.0.0-dev"}\n`);
      return 0;
    }
    if (!Object.hasOwn(COMMANDS, name)) {
      throw new UsageError(
        `unknown command "${name}"; the commands are ${COMMAND_LIST} (run "credcache --help")`,
      );
    }
    const command = await COMMANDS[name]!();
    return await command.run(rest, commandIo);
  } catch (error) {
    const where = name !== undefined && Object.hasOwn(COMMANDS, name) ? `credcache ${name}` : "credcache";
    io.stderr.write(`${where}: ${oneLine(messageOf(error))}\n`);
    return exitCodeOf(error);
  }
}
