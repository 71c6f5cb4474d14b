/**
 * Redis Cluster's key-to-slot rule and its slot table, as the built-in client needs them.
 * Pure (no I/O).
 * @internal
 */
import type { Reply } from "./resp.js";

export const SLOT_COUNT = 16_384;

/** CRC16/XMODEM, the checksum Redis Cluster hashes keys with, one table lookup per byte. */
const CRC_TABLE = Array.from({ length: 256 }, (_, byte) => {
  let crc = byte << 8;
  for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  return crc;
});

/**
 * The slot of `key`: CRC16 of its hash tag (the text between the first "{" and the next "}",
 * when not empty) or else of the whole key, modulo 16384.
 */
export function slotOf(key: string): number {
  let bytes = Buffer.from(key);
  const open = bytes.indexOf(0x7b); // "{"
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1); // "}"
    if (close > open + 1) bytes = bytes.subarray(open + 1, close);
  }
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ (CRC_TABLE[((crc >> 8) ^ byte) & 0xff] as number);
  return crc % SLOT_COUNT;
}

/** A node as the client dials it. */
export interface NodeAddress {
  host: string;
  port: number;
}

/**
 * The master of every slot from a `CLUSTER SLOTS` reply (`[[start, end, [host, port, id,
 * ...], replicas...], ...]`). A node announced without a usable host ("" or "?", as
 * Redis does when it does not know how it is reached) is reached at `seedHost`, the host
 * the user named: the shape of a managed service with one endpoint.
 * `undefined` for a reply that is no slot table.
 */
export function slotTable(reply: Reply, seedHost: string): Array<NodeAddress | undefined> | undefined {
  if (!Array.isArray(reply)) return undefined;
  const table: Array<NodeAddress | undefined> = new Array(SLOT_COUNT).fill(undefined);
  for (const range of reply) {
    if (!Array.isArray(range)) return undefined;
    const [start, end, master] = range;
    if (typeof start !== "number" || typeof end !== "number" || !Array.isArray(master)) return undefined;
    const [host, port] = master;
    if (typeof host !== "string" || typeof port !== "number") return undefined;
    if (start < 0 || end >= SLOT_COUNT || start > end || port <= 0 || port > 65_535) return undefined;
    const node = { host: host === "" || host === "?" ? seedHost : host, port };
    for (let slot = start; slot <= end; slot++) table[slot] = node;
  }
  return table;
}

/** `MOVED <slot> <host>:<port>` or `ASK ...` from an error reply's text; the host may be empty. */
export function redirectOf(
  message: string,
  seedHost: string,
): { kind: "MOVED" | "ASK"; slot: number; node: NodeAddress } | undefined {
  const match = /^(MOVED|ASK) (\d+) (.*):(\d+)$/.exec(message);
  if (!match) return undefined;
  const [, kind, slot, host, port] = match as unknown as [string, "MOVED" | "ASK", string, string, string];
  const bare = host.replace(/^\[(.*)\]$/, "$1");
  return {
    kind,
    slot: Number(slot),
    node: { host: bare === "" || bare === "?" ? seedHost : bare, port: Number(port) },
  };
}
