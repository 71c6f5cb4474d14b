/**
 * Keyv 5's default serializer (`@keyv/serialize` 1.x), restated so that `createRedisCache`
 * writes and reads the very bytes Keyv does without loading Keyv: hosts on the older
 * Keyv-based code and hosts on this one share records. Beyond JSON it escapes a string
 * that starts with ":" by one more ":", writes a Buffer as ":base64:...", and drops
 * functions (in arrays too). The test "keyvSerialize matches @keyv/serialize" holds it to that.
 * @internal
 */
export function serializeKeyv(data: unknown): string {
  return serialize(data, true);
}

function serialize(data: unknown, escapeColon: boolean): string {
  if (data === undefined || data === null) return "null";
  if (typeof data === "string")
    return JSON.stringify(escapeColon && data.startsWith(":") ? `:${data}` : data);
  if (Buffer.isBuffer(data)) return JSON.stringify(`:base64:${data.toString("base64")}`);
  let value = data;
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === "function") value = toJSON.call(value);
  // As in @keyv/serialize, a toJSON() that returns null gives "{}" (typeof null is "object").
  if (typeof value !== "object") return JSON.stringify(value);
  const isArray = Array.isArray(value);
  const record = value as Record<string, unknown>;
  const parts: string[] = [];
  for (const key in record) {
    const item = record[key];
    if (!Object.hasOwn(record, key) || typeof item === "function" || (!isArray && item === undefined))
      continue;
    parts.push(
      isArray ? serialize(item, escapeColon) : `${serialize(key, false)}:${serialize(item, escapeColon)}`,
    );
  }
  return isArray ? `[${parts.join(",")}]` : `{${parts.join(",")}}`;
}

/** Keyv 5's default deserializer: JSON, with ":"-escaped strings unescaped and ":base64:" strings as Buffers. */
export function deserializeKeyv(text: string): unknown {
  return JSON.parse(text, (_key, value: unknown) => {
    if (typeof value !== "string") return value;
    if (value.startsWith(":base64:")) return Buffer.from(value.slice(8), "base64");
    return value.startsWith(":") ? value.slice(1) : value;
  });
}
