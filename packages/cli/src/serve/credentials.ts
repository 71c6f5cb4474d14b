import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { messageOf, UsageError } from "../errors.js";
import { parseSource, SOURCE_OPTION_FLAGS, type Source } from "../sources.js";

/** One credential the server hands out at `/creds/NAME`. */
export interface NamedCredential {
  name: string;
  source: Source;
  /** The same option flags `credcache process` takes, as strings (`timeout`, `region`, ...). */
  flags: Record<string, string>;
}

/** What a credentials file holds. */
export interface CredentialsFile {
  credentials: NamedCredential[];
  /** The credential also served at `/creds/default`, when the file names one. */
  defaultName?: string;
}

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
/** Per-credential settings in the file: the option flags of `credcache process`. */
const OPTION_NAMES = new Set(Object.keys(SOURCE_OPTION_FLAGS));
const MAX_FILE_BYTES = 256 * 1024;

export const CREDENTIALS_EXAMPLE =
  '{ "default": "web", "credentials": { "web": { "source": "imds" }, "reports": { "source": "assume-role:arn:aws:iam::123456789012:role/reports", "session-name": "reports" } } }';

/**
 * Reads a credentials file: JSON data only (never code), a regular file of bounded size.
 * `default` names the entry also served at `/creds/default`.
 */
export function readCredentialsFile(file: string): CredentialsFile {
  const problem = (reason: string) => new UsageError(`credentials file ${file}: ${reason}`);
  let text: string;
  let fd: number | undefined;
  try {
    // O_NONBLOCK: a FIFO must fail the regular-file check, not hang the open.
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
    const st = fstatSync(fd);
    if (!st.isFile()) throw problem("not a regular file");
    if (st.size > MAX_FILE_BYTES) throw problem(`${st.size} bytes is too large for a credentials file`);
    const buffer = Buffer.alloc(st.size);
    const n = readSync(fd, buffer, 0, st.size, 0);
    text = buffer.toString("utf8", 0, n);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    throw problem(
      code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : messageOf(error),
    );
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw problem("not valid JSON");
  }
  const config = parsed as { default?: unknown; credentials?: unknown };
  const entries = config?.credentials;
  if (typeof entries !== "object" || entries === null || Array.isArray(entries)) {
    throw problem(`expected an object like ${CREDENTIALS_EXAMPLE}`);
  }
  for (const key of Object.keys(config)) {
    if (key !== "default" && key !== "credentials") throw problem(`unknown setting "${key}"`);
  }
  const out: NamedCredential[] = [];
  for (const [name, entry] of Object.entries(entries)) {
    if (!NAME.test(name)) throw problem(`credential name "${name}": use 1-64 letters, digits and ._-`);
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      throw problem(`credential "${name}" must be an object with a "source"`);
    }
    const { source, ...options } = entry as Record<string, unknown>;
    if (typeof source !== "string") throw problem(`credential "${name}" needs a "source", e.g. "imds"`);
    const flags: Record<string, string> = {};
    for (const [option, value] of Object.entries(options)) {
      if (!OPTION_NAMES.has(option)) {
        throw problem(
          `credential "${name}": unknown setting "${option}" (known: source, ${[...OPTION_NAMES].join(", ")})`,
        );
      }
      if (typeof value !== "string" && typeof value !== "number") {
        throw problem(`credential "${name}": "${option}" must be a string or a number`);
      }
      flags[option] = String(value);
    }
    out.push({ name, source: parseSource(source), flags });
  }
  if (out.length === 0) throw problem("it names no credentials");
  if (config.default === undefined) return { credentials: out };
  if (typeof config.default !== "string" || !out.some((c) => c.name === config.default)) {
    throw problem(`"default" must name one of the credentials (${out.map((c) => c.name).join(", ")})`);
  }
  if (config.default !== "default" && out.some((c) => c.name === "default")) {
    throw problem(`"default" names "${config.default}" but there is also a credential called "default"`);
  }
  return { credentials: out, defaultName: config.default };
}
