import { ERROR_CODES, hasErrorCode } from "@credcache/core";
import { printable } from "./format.js";

/** An error the CLI reports as one line on stderr, with its own exit code. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.name = new.target.name;
    this.exitCode = exitCode;
  }
}

/** Bad flags, a bad cache URL or config, an unknown source: exit 2. The message says what to fix. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, 2);
  }
}

/** The command ran but could not do its job (no credentials, a store that failed): exit 1. */
export class CommandFailedError extends CliError {
  constructor(message: string) {
    super(message, 1);
  }
}

/** Codes of core errors that mean "fix your configuration" rather than "try again". */
const CONFIG_ERROR_CODES = [ERROR_CODES.config, ERROR_CODES.missingAdapter, ERROR_CODES.unavailable];

/** Exit code for anything thrown by a command. */
export function exitCodeOf(error: unknown): number {
  if (error instanceof CliError) return error.exitCode;
  return CONFIG_ERROR_CODES.some((code) => hasErrorCode(error, code)) ? 2 : 1;
}

/**
 * A message squeezed onto one line, secrets replaced, control characters escaped
 * ({@link printable}), length capped. V8 quotes a piece of
 * the input in JSON errors (`Unexpected token 'x', "x{"Secret"... is not valid JSON`); a
 * truncated credentials document could put part of a secret there, so the quote goes.
 */
export function oneLine(text: string, secrets: Iterable<string | undefined> = []): string {
  let out = text.replace(
    /(Unexpected token .+?, )(?:\.\.\.)?".*?"(?:\.\.\.)? is not valid JSON/g,
    "$1input that is not valid JSON",
  );
  for (const secret of secrets) {
    if (secret && secret.length >= 8) out = out.split(secret).join("[redacted]");
  }
  out = printable(out.replace(/\s+/g, " ").trim());
  return out.length > 500 ? `${out.slice(0, 497)}...` : out;
}

/** The message of anything thrown. */
export function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}
