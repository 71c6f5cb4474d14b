import { closeSync, constants, fstatSync, openSync, readSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, isAbsolute, join, resolve } from "node:path";

/** Environment variables the keys and the chain read. */
export type KeyEnv = Record<string, string | undefined>;

/** Where the shared config files are read from, as the SDK resolves them. */
export interface SharedConfigOptions {
  /** @default process.env */
  env?: KeyEnv;
  /** Base of a relative `AWS_CONFIG_FILE`. @default process.cwd() */
  cwd?: string;
}

/** A file named by a key: its absolute path and, when it exists, which file it is on this machine. */
export interface FileIdentity {
  path: string;
  /** Device and inode: two files with the same path and text in two containers still differ here. */
  dev?: number;
  ino?: number;
}

/** One INI section: `name = value` pairs (sub-properties as `parent.name`). */
export type IniSection = Record<string, string>;

/** The shared config and credentials files, parsed the way the SDK parses them. */
export interface SharedConfig {
  config: FileIdentity;
  credentials: FileIdentity;
  /** Profiles by name, the credentials file's values over the config file's (as the SDK merges them). */
  profiles: Record<string, IniSection>;
  /** `[sso-session NAME]` sections of the config file. */
  ssoSessions: Record<string, IniSection>;
}

/** Config files larger than this are not read for a key (the SDK reads them; the key then names the path only). */
const MAX_CONFIG_BYTES = 1024 * 1024;

function identify(path: string): FileIdentity {
  try {
    const { dev, ino } = statSync(path);
    return { path, dev, ino };
  } catch {
    return { path };
  }
}

/** A config file's text, or "" when it is missing, not a regular file, or too large. Never blocks on a FIFO. */
function readConfigText(path: string): string {
  let fd: number | undefined;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    const stat = fstatSync(fd);
    if (!stat.isFile() || stat.size > MAX_CONFIG_BYTES) return "";
    // One byte more than the size: a file that grew since fstat counts as unreadable, never read past the cap.
    const buffer = Buffer.alloc(stat.size + 1);
    const n = readSync(fd, buffer, 0, buffer.length, 0);
    return n > stat.size ? "" : buffer.toString("utf8", 0, n);
  } catch {
    return "";
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

const SECTION_PREFIX = /^([\w-]+)\s(["'])?([\w\-@+.%:/]+)\2$/;

/** INI sections as `@smithy/shared-ini-file-loader`'s parseIni reads them (comments, sub-properties). */
function parseIni(text: string): Map<string, IniSection> {
  const sections = new Map<string, IniSection>();
  let current: IniSection | undefined;
  let sub: string | undefined;
  for (const line of text.split(/\r?\n/)) {
    const trimmed = line.split(/(^|\s)[;#]/)[0]!.trim();
    if (trimmed.startsWith("[") && trimmed.endsWith("]")) {
      const name = trimmed.slice(1, -1);
      const prefixed = SECTION_PREFIX.exec(name);
      const id = prefixed ? `${prefixed[1]} ${prefixed[3]}` : name;
      current = sections.get(id) ?? Object.create(null);
      sections.set(id, current!);
      sub = undefined;
      continue;
    }
    const equals = trimmed.indexOf("=");
    if (!current || equals <= 0) continue;
    const name = trimmed.slice(0, equals).trim();
    const value = trimmed.slice(equals + 1).trim();
    if (value === "") {
      sub = name;
      continue;
    }
    if (sub && line.trimStart() === line) sub = undefined;
    current[sub ? `${sub}.${name}` : name] = value;
  }
  return sections;
}

/**
 * The shared config files the SDK would read (`AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE`,
 * else `~/.aws/config` and `~/.aws/credentials`), made absolute, identified, and parsed.
 * Synchronous: keys are built before the first fetch.
 */
export function readSharedConfig(options: SharedConfigOptions = {}): SharedConfig {
  const env = options.env ?? process.env;
  const home = env.HOME || env.USERPROFILE || homedir();
  const absolute = (path: string): string =>
    resolve(options.cwd ?? process.cwd(), path.startsWith("~/") ? join(home, path.slice(2)) : path);
  const config = identify(absolute(env.AWS_CONFIG_FILE || join(home, ".aws", "config")));
  const credentials = identify(
    absolute(env.AWS_SHARED_CREDENTIALS_FILE || join(home, ".aws", "credentials")),
  );
  const profiles: Record<string, IniSection> = Object.create(null);
  const ssoSessions: Record<string, IniSection> = Object.create(null);
  for (const [id, section] of parseIni(readConfigText(config.path))) {
    if (id === "default") profiles.default = { ...section };
    else if (id.startsWith("profile ")) profiles[id.slice(8)] = { ...section };
    else if (id.startsWith("sso-session ")) ssoSessions[id.slice(12)] = { ...section };
  }
  for (const [name, section] of parseIni(readConfigText(credentials.path))) {
    profiles[name] = { ...profiles[name], ...section };
  }
  return { config, credentials, profiles, ssoSessions };
}

/** The profile the SDK uses: `AWS_PROFILE`, else `default`. */
export function profileName(env: KeyEnv = process.env): string {
  return env.AWS_PROFILE || "default";
}

/**
 * A profile and every profile it takes credentials from (`source_profile`), in order, with the
 * `sso-session` it names. Stops at a loop, as the SDK refuses one.
 */
export function profileChain(
  config: SharedConfig,
  name: string,
): Array<{ name: string; section: IniSection }> {
  const chain: Array<{ name: string; section: IniSection }> = [];
  let next: string | undefined = name;
  while (next !== undefined && !chain.some((link) => link.name === next) && chain.length < 16) {
    const section: IniSection = config.profiles[next] ?? {};
    chain.push({ name: next, section });
    next = section.role_arn ? section.source_profile : undefined;
  }
  return chain;
}

/** The program a `credential_process` command line runs, found as a shell would (PATH). */
export function processTarget(command: string, env: KeyEnv = process.env): FileIdentity {
  const first = /^\s*(?:"([^"]*)"|'([^']*)'|(\S+))/.exec(command);
  const program = first?.[1] ?? first?.[2] ?? first?.[3] ?? "";
  if (program.includes("/") || isAbsolute(program)) return identify(resolve(program));
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (!dir) continue;
    const found = identify(join(dir, program));
    if (found.ino !== undefined) return found;
  }
  return { path: program };
}
