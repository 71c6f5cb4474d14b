import { refreshStateKey } from "@credcache/core";
import { commandLine } from "../args.js";
import { UsageError } from "../errors.js";
import { printable } from "../format.js";
import type { CommandIo } from "../io.js";
import { wellKnownKeys } from "../sources.js";
import { listKeys, readEntry, storeCall } from "../store.js";
import { requestedKeys, STORE_FLAGS, withStore } from "./shared.js";

const FLAGS = { ...STORE_FLAGS, source: "strings", help: "boolean" } as const;

/** `credcache clear`: remove named entries, or every entry of a store that can list them. */
export async function run(argv: readonly string[], io: CommandIo): Promise<number> {
  const args = await commandLine(argv, FLAGS, "clear", io, "allowed");
  if (!args) return 0;
  const { flags, positionals } = args;
  const named = [...new Set(requestedKeys(positionals, flags.source, io))];
  return withStore(flags, io, async (store, spec) => {
    if (named.length > 0) {
      for (const key of named) {
        // A broken entry counts as present: reading it removed it.
        const read = await readEntry(store, key);
        const present = "rejected" in read || read.value !== undefined;
        await storeCall(`removing "${key}"`, () => store.remove(key));
        // Its shared refresh state (backoff after failures) goes with it.
        await storeCall(`removing "${key}"`, () => store.remove(refreshStateKey(key)));
        io.stdout.write(present ? `removed ${printable(key)}\n` : `not cached: ${printable(key)}\n`);
      }
      return 0;
    }
    const listed = await listKeys(store);
    if (listed === undefined) {
      throw new UsageError(
        `${spec.label} cannot list its keys, so clear needs the keys to remove, e.g. credcache clear ` +
          `${wellKnownKeys(io.env)
            .map((key) => JSON.stringify(key))
            .join(" ")} (or --source imds); "credcache inspect" shows which exist`,
      );
    }
    for (const key of listed) {
      await storeCall(`removing "${key}"`, () => store.remove(key));
      await storeCall(`removing "${key}"`, () => store.remove(refreshStateKey(key)));
    }
    io.stdout.write(
      `removed ${listed.length} ${listed.length === 1 ? "entry" : "entries"} from ${spec.label}\n`,
    );
    return 0;
  });
}
