import { UsageError } from "./errors.js";

/** `string`: one value; `strings`: repeatable; `boolean`: a switch. */
export type FlagKind = "string" | "strings" | "boolean";
export type FlagSpec = Record<string, FlagKind>;

export type ParsedFlags<S extends FlagSpec> = {
  [K in keyof S]: S[K] extends "boolean" ? boolean : S[K] extends "strings" ? string[] : string | undefined;
};

export interface ParsedArgs<S extends FlagSpec> {
  flags: ParsedFlags<S>;
  positionals: string[];
}

/**
 * A deliberately small parser: `--name value`, `--name=value`, `-h`, `--` ends the flags.
 * Written by hand so that start-up loads nothing, and so that every mistake gets a
 * message that names the command's --help.
 */
export function parseArgs<S extends FlagSpec>(
  argv: readonly string[],
  spec: S,
  command: string,
): ParsedArgs<S> {
  const flags: Record<string, string | string[] | boolean | undefined> = {};
  for (const [name, kind] of Object.entries(spec)) {
    flags[name] = kind === "boolean" ? false : kind === "strings" ? [] : undefined;
  }
  const positionals: string[] = [];
  const seeHelp = `run "credcache ${command} --help"`;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg === "-h") {
      flags.help = true;
      continue;
    }
    if (!arg.startsWith("--") || arg === "-") {
      if (arg.startsWith("-") && arg !== "-") throw new UsageError(`unknown option ${arg}; ${seeHelp}`);
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    const kind = Object.hasOwn(spec, name) ? spec[name] : undefined;
    if (kind === undefined) throw new UsageError(`unknown option --${name}; ${seeHelp}`);
    if (kind === "boolean") {
      if (eq !== -1) throw new UsageError(`--${name} takes no value; ${seeHelp}`);
      flags[name] = true;
      continue;
    }
    let value: string | undefined;
    if (eq !== -1) {
      value = arg.slice(eq + 1);
    } else {
      value = argv[i + 1];
      if (value === undefined || value.startsWith("--")) {
        throw new UsageError(`--${name} needs a value; ${seeHelp}`);
      }
      i++;
    }
    if (kind === "strings") {
      (flags[name] as string[]).push(value);
    } else {
      if (flags[name] !== undefined) throw new UsageError(`--${name} is given twice; ${seeHelp}`);
      flags[name] = value;
    }
  }
  return { flags: flags as ParsedFlags<S>, positionals };
}

/** An integer flag within bounds, or `undefined` when absent. */
export function integerFlag(
  value: string | undefined,
  name: string,
  min: number,
  max: number,
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, got "${value}"`);
  }
  return n;
}

/**
 * Every command's start: its flags parsed, `--help` printed (then `undefined`: exit 0),
 * and positionals refused unless the command takes them (`positionals` says what to do
 * instead, e.g. `use --key`).
 */
export async function commandLine<S extends FlagSpec>(
  argv: readonly string[],
  spec: S,
  command: string,
  io: { stdout: { write(chunk: string): unknown } },
  positionals: "allowed" | ((given: string) => string) = () => `run "credcache ${command} --help"`,
): Promise<ParsedArgs<S> | undefined> {
  const parsed = parseArgs(argv, spec, command);
  if ((parsed.flags as Record<string, unknown>).help === true) {
    io.stdout.write((await import("./help.js")).helpText(command));
    return undefined;
  }
  const [extra] = parsed.positionals;
  if (positionals !== "allowed" && extra !== undefined) {
    throw new UsageError(`unexpected argument "${extra}"; ${positionals(extra)}`);
  }
  return parsed;
}
