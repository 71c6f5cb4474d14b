import type { EventError } from "./types.js";

const inspectCustom = Symbol.for("nodejs.util.inspect.custom");

/** `ASIAXYZ...WXYZ` style: enough to tell two keys apart, too little to use. */
export function truncateAccessKeyId(accessKeyId: string): string {
  if (accessKeyId.length <= 8) return `${accessKeyId.slice(0, 2)}…`;
  return `${accessKeyId.slice(0, 4)}…${accessKeyId.slice(-4)}`;
}

/**
 * Makes `util.inspect` (and so `console.log`) of an object that holds credentials
 * print a redacted copy. The property is a non-enumerable symbol: JSON, spreads and
 * the SDK never see it.
 */
export function redactOnInspect<T extends object>(target: T): T {
  Object.defineProperty(target, inspectCustom, {
    value: function inspectRedacted(this: Record<string, unknown>) {
      const shown: Record<string, unknown> = {};
      for (const [name, value] of Object.entries(this)) {
        if (name === "secretAccessKey" || name === "sessionToken") shown[name] = "[redacted]";
        else if (name === "accessKeyId" && typeof value === "string")
          shown[name] = truncateAccessKeyId(value);
        else shown[name] = value;
      }
      return shown;
    },
    enumerable: false,
    configurable: true,
  });
  return target;
}

/**
 * Shapes of AWS secrets: a 40-character secret access key and a long session token,
 * both base64-ish with mixed case and digits (so hex digests and paths are kept).
 */
const SECRET_SHAPES =
  /(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+=]*[a-z])(?=[A-Za-z0-9/+=]*[A-Z])(?=[A-Za-z0-9/+=]*[0-9])(?:[A-Za-z0-9/+=]{40}|[A-Za-z0-9/+=]{100,})(?![A-Za-z0-9/+=])/g;

/** Replaces every occurrence of the given secrets, and anything shaped like one, in `text`. */
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
