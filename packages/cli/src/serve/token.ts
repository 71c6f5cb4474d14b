import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fstatSync,
  fsyncSync,
  openSync,
  readFileSync,
  readSync,
  type Stats,
  unlinkSync,
  writeSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { trustedDirectory } from "@credcache/trusted-path";
import { CommandFailedError, UsageError } from "../errors.js";

/** What a token looks like: printable ASCII, no spaces, no line break (a header value). */
const TOKEN_SHAPE = /^[\x21-\x7e]{16,1024}$/;
const MAX_TOKEN_FILE_BYTES = 4096;

function refuse(what: string, reason: string): UsageError {
  return new UsageError(`refusing the token file ${what}: ${reason}`);
}

/**
 * The token's directory and every directory above it must be safe from other users: the
 * file store's rule (sshd's StrictModes), from `@credcache/trusted-path`, so both refuse the same
 * directories with the same words. A missing directory is created 0700.
 */
function checkDirectories(file: string): void {
  try {
    trustedDirectory(dirname(file), { store: "credcache serve", what: "token directory" }).verify();
  } catch (error) {
    throw refuse(file, (error as Error).message);
  }
}

/** A group name (from /etc/group) or a numeric gid. */
export function parseGroup(text: string): number {
  if (/^\d{1,10}$/.test(text)) return Number(text);
  let groups = "";
  try {
    groups = readFileSync("/etc/group", "utf8");
  } catch {
    // No /etc/group: only numeric ids work.
  }
  for (const line of groups.split("\n")) {
    const [name, , gid] = line.split(":");
    if (name === text && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new UsageError(`--token-group ${text}: no such group in /etc/group; pass the numeric gid`);
}

function checkExisting(file: string, st: Stats, gid: number | undefined): void {
  const uid = process.getuid?.() ?? 0;
  if (!st.isFile()) throw refuse(file, "it is not a regular file");
  if (st.uid !== uid) throw refuse(file, `it is owned by uid ${st.uid}, not by uid ${uid}`);
  if (st.nlink !== 1) throw refuse(file, `it has ${st.nlink} hard links`);
  // Without --token-group, no group may read it: a group nobody chose is not a grant.
  const forbidden = gid === undefined ? 0o077 : 0o037;
  if ((st.mode & forbidden) !== 0) {
    const mode = (st.mode & 0o777).toString(8);
    throw refuse(
      file,
      gid === undefined
        ? `its mode is ${mode}; run chmod 600 on it, or pass --token-group GROUP to share it with that group (640)`
        : `its mode is ${mode}; run chmod 640 on it (owner read-write, --token-group read)`,
    );
  }
  if (gid !== undefined && st.gid !== gid) {
    throw refuse(file, `its group is ${st.gid}, not ${gid} (--token-group); fix it or remove the file`);
  }
}

function readExisting(file: string, gid: number | undefined): string | undefined {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO planted under this name must not hang the start.
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    if (code === "ELOOP") throw refuse(file, "it is a symbolic link");
    throw refuse(file, `cannot open it (${code})`);
  }
  try {
    const st = fstatSync(fd);
    checkExisting(file, st, gid);
    if (st.size > MAX_TOKEN_FILE_BYTES) throw refuse(file, `it is ${st.size} bytes; a token is 64`);
    const buffer = Buffer.alloc(st.size);
    const n = readSync(fd, buffer, 0, st.size, 0);
    const token = buffer.toString("latin1", 0, n);
    if (/[\r\n]$/.test(token)) {
      throw refuse(
        file,
        "it ends with a line break, which SDKs would send as part of the token; write it with printf '%s', or remove it and let serve create one",
      );
    }
    if (!TOKEN_SHAPE.test(token)) {
      throw refuse(file, "a token is 16 to 1024 printable ASCII characters without spaces");
    }
    return token;
  } finally {
    closeSync(fd);
  }
}

function createToken(file: string, gid: number | undefined): string | undefined {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  const mode = gid === undefined ? 0o600 : 0o640;
  let fd: number;
  try {
    fd = openSync(file, flags, 0o600);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EEXIST") return undefined;
    throw refuse(file, `cannot create it (${code})`);
  }
  const token = randomBytes(32).toString("hex");
  let written = false;
  try {
    if (gid !== undefined) {
      try {
        fchownSync(fd, process.getuid?.() ?? 0, gid);
      } catch (error) {
        throw refuse(
          file,
          `cannot give it to group ${gid} (${(error as NodeJS.ErrnoException).code}); the server's user must be a member`,
        );
      }
    }
    // Exactly this mode whatever the umask; on the descriptor, never through the path.
    fchmodSync(fd, mode);
    writeSync(fd, token);
    fsyncSync(fd);
    written = true;
    return token;
  } finally {
    closeSync(fd);
    // An empty or half-made file would make every later start refuse it.
    if (!written) unlinkSync(file);
  }
}

/**
 * The bearer token clients must send, read from `file`, or created there (32 random bytes
 * as hex, no line break) when the file does not exist yet. The directories are checked
 * first; an existing file must be ours, regular, singly linked and 600 (640 with a group).
 */
export function prepareTokenFile(file: string, gid?: number): string {
  checkDirectories(file);
  for (let attempt = 0; attempt < 2; attempt++) {
    const token = readExisting(file, gid) ?? createToken(file, gid);
    if (token !== undefined) return token;
  }
  throw new CommandFailedError(`the token file ${file} keeps appearing and disappearing`);
}

/** Default token file under systemd's RuntimeDirectory=, when set. */
export function defaultTokenFile(env: Record<string, string | undefined>): string | undefined {
  const runtime = env.RUNTIME_DIRECTORY?.split(":")[0];
  return runtime ? join(runtime, "token") : undefined;
}

/**
 * Constant-time check of an `Authorization` header against the token. Both sides are
 * hashed first, so the comparison has a fixed length and leaks neither length nor prefix.
 */
export function tokenChecker(token: string): (header: string | undefined) => boolean {
  const digest = (value: string) => createHash("sha256").update(value, "latin1").digest();
  const expected = digest(token);
  return (header) => header !== undefined && timingSafeEqual(digest(header), expected);
}
