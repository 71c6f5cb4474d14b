import type { EventError } from "./types.js";

const inspectCustom = Symbol.for("nodejs.util.inspect.custom");

/** `ASIAXYZ...WXYZ` style: enough to tell two keys apart, too little to use. */
export function truncateAccessKeyId(accessKeyId: string): string {
  if (accessKeyId.length <= 8) return `${accessKeyId.slice(0, 2)}…`;
  return `${accessKeyId.slice(0, 4)}…${accessKeyId.slice(-4)}`;
}

/** What `util.inspect` shows for an object that holds credentials. */
function redactedView(target: object): Record<string, unknown> {
  const shown: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(target)) {
    if (name === "secretAccessKey" || name === "sessionToken") shown[name] = "[redacted]";
    else if (name === "accessKeyId" && typeof value === "string") shown[name] = truncateAccessKeyId(value);
    else shown[name] = value;
  }
  return shown;
}

/**
 * A prototype whose only member makes `util.inspect` (and so `console.log`) print a
 * redacted copy. Objects made with it are ordinary data to JSON, spreads and the SDK;
 * one shared prototype costs nothing per object, unlike a property on each.
 */
export const redactedPrototype: object = Object.freeze(
  Object.create(Object.prototype, {
    [inspectCustom]: {
      value: function inspectRedacted(this: object) {
        return redactedView(this);
      },
    },
  }),
);

/**
 * Shapes of AWS secrets: a 40-character secret access key and a long session token,
 * both base64-ish with mixed case and digits (so hex digests and paths are kept).
 */
const SECRET_SHAPES =
  /(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+=]*[a-z])(?=[A-Za-z0-9/+=]*[A-Z])(?=[A-Za-z0-9/+=]*[0-9])(?:[A-Za-z0-9/+=]{40}|[A-Za-z0-9/+=]{100,})(?![A-Za-z0-9/+=])/g;

/** Replaces every occurrence of the given secrets, and anything shaped like one, in `text`. @internal */
export function scrub(text: string, secrets: Iterable<string | undefined>): string {
  let out = text.replace(SECRET_SHAPES, "[redacted]");
  for (const secret of secrets) {
    if (secret && secret.length >= 8) out = out.split(secret).join("[redacted]");
  }
  return out;
}

/** An error as it may appear in an event or log line: name, code, scrubbed message. */
export function describeError(error: unknown, secrets: Iterable<string | undefined> = []): EventError {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return {
      name: error.name,
      message: scrub(error.message, secrets).slice(0, 500),
      ...(typeof code === "string" && { code }),
    };
  }
  return { name: "Error", message: scrub(String(error), secrets).slice(0, 500) };
}

/** Longest rendering of a value in an error message. */
const MAX_CHARS = 60;

/**
 * A config value for an error message. Never throws (`JSON.stringify` does on a BigInt
 * or a cycle, `String` on a null-prototype object or a hostile `toString`), never long.
 */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  const type = typeof value;
  if (type === "object") return "an object";
  if (type === "function") return "a function";
  let text: string;
  try {
    text =
      type === "string"
        ? JSON.stringify((value as string).slice(0, MAX_CHARS))
        : type === "bigint"
          ? `${String(value)}n`
          : String(value);
  } catch {
    return type;
  }
  return text.length > MAX_CHARS ? `${text.slice(0, MAX_CHARS - 3)}...` : text;
}

/**
 * The secrets of the last few credential sets handed out, to mask in any line that might
 * quote them (an SDK error can quote a credentials document). Bounded: a long-running
 * process keeps the newest `max`.
 */
export class RecentSecrets implements Iterable<string> {
  private readonly secrets: string[] = [];
  constructor(private readonly max = 8) {}

  remember(set: { secretAccessKey?: string | undefined; sessionToken?: string | undefined }): void {
    for (const secret of [set.secretAccessKey, set.sessionToken]) {
      if (secret && !this.secrets.includes(secret)) this.secrets.push(secret);
    }
    this.secrets.splice(0, Math.max(0, this.secrets.length - this.max));
  }

  [Symbol.iterator](): Iterator<string> {
    return this.secrets[Symbol.iterator]();
  }
}

/**
 * Hides the credentials of a URL before it goes into an error message: everything
 * between the scheme and the last `@`. A password may hold `@`, `#`, `?` or `/`
 * unencoded, so no URL parser can be trusted to find where it ends.
 */
export function redactUrl(url: string): string {
  const at = url.lastIndexOf("@");
  if (at === -1) return url;
  const scheme = /^[a-z][a-z0-9+.-]*:(?:\/\/)?/i.exec(url)?.[0] ?? "";
  return `${scheme}***@${url.slice(at + 1)}`;
}
