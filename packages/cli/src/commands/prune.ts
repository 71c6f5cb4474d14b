import { parseRecord } from "@credcache/core";
import { commandLine } from "../args.js";
import { printable } from "../format.js";
import type { CommandIo } from "../io.js";
import { wellKnownKeys } from "../sources.js";
import { canPrune, collectKeys, readEntry, storeCall } from "../store.js";
import { requestedKeys, STORE_FLAGS, withStore } from "./shared.js";

const FLAGS = { ...STORE_FLAGS, key: "strings", source: "strings", help: "boolean" } as const;

/**
 * `credcache prune`: the store's own prune (expired entries, lock leftovers), then a check
 * of every record it can find, removing those that are expired by their credentials'
 * expiration or are not valid records (a store's TTL cannot know either).
 */
export async function run(argv: readonly string[], io: CommandIo): Promise<number> {
  const args = await commandLine(argv, FLAGS, "prune", io, (given) => `to check a key use --key "${given}"`);
  if (!args) return 0;
  const { flags } = args;
  const requested = requestedKeys(flags.key, flags.source, io);
  return withStore(flags, io, async (store, spec) => {
    let byStore: number | undefined;
    if (canPrune(store)) {
      const result = await storeCall("pruning", () => store.prune());
      byStore = typeof result === "number" ? result : 0;
    }
    const { keys, listed } = await collectKeys(store, requested, wellKnownKeys(io.env));
    const now = Date.now();
    let checked = 0;
    let byRecord = 0;
    for (const key of keys) {
      const read = await readEntry(store, key);
      if ("rejected" in read) {
        // Refused by the store (garbage, or a record no key can decrypt): readEntry removed it.
        checked += 1;
        byRecord += 1;
        continue;
      }
      const { value } = read;
      if (value === undefined || value === null) continue;
      checked += 1;
      const parsed = parseRecord(value);
      const expired = parsed.ok && parsed.record.expiration !== undefined && parsed.record.expiration <= now;
      if (!parsed.ok || expired) {
        await storeCall(`removing "${key}"`, () => store.remove(key));
        byRecord += 1;
      }
    }
    const total = (byStore ?? 0) + byRecord;
    const how = [
      ...(byStore === undefined ? [] : [`store prune: ${byStore}`]),
      `records checked: ${checked}, removed: ${byRecord}`,
    ].join("; ");
    const scope = listed
      ? ""
      : `; this store cannot list its keys, so only ${printable(keys.join(", "))} were checked`;
    io.stdout.write(
      `removed ${total} expired or unreadable ${total === 1 ? "entry" : "entries"} from ${spec.label} (${how}${scope})\n`,
    );
    return 0;
  });
}
