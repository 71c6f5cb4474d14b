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
