import {
  type CacheRecord,
  expiresAtOfRecord,
  PROCESS_DEFAULTS,
  parseRecord,
  REFRESH_DEFAULTS,
  type RefreshWindow,
  truncateAccessKeyId,
  windowOfRecord,
} from "@credcache/core";
import { commandLine } from "../args.js";
import { CommandFailedError } from "../errors.js";
import { formatDuration, formatTable, printable } from "../format.js";
import type { CommandIo } from "../io.js";
import { wellKnownKeys } from "../sources.js";
import { collectKeys, type EntryRead, readEntry } from "../store.js";
import { requestedKeys, STORE_FLAGS, withStore } from "./shared.js";

const FLAGS = {
  ...STORE_FLAGS,
  key: "strings",
  source: "strings",
  json: "boolean",
  help: "boolean",
} as const;

/** One entry as `inspect --json` prints it. Never holds a secret. */
export type InspectEntry =
  | {
      key: string;
      status: "ok";
      source: string | null;
      /** Truncated: `ASIA…WXYZ`. */
      accessKeyId: string;
      accountId: string | null;
      /** The credentials' own expiry (ISO 8601), or null for long-term keys. */
      expiration: string | null;
      /**
       * Until when the cache hands the set out: its expiration, or for long-term keys
       * (no expiration) the end of the bounded time they are kept.
       */
      usableUntil: string;
      /** Seconds left until `usableUntil` (negative once past). */
      expiresInSeconds: number;
      /** The refresh window with the windows of `credcache process` and `serve` (25 / 20 min). */
      window: RefreshWindow;
      cachedAt: string;
    }
  | { key: string; status: "missing" }
  | { key: string; status: "invalid"; reason: string }
  | { key: string; status: "error"; error: string };

/**
 * The windows of the CLI's own commands: `process` and `serve` both refresh at 25 / 20 min,
 * and keep long-term keys core's default bounded time.
 */
const CLI_WINDOWS = {
  advisoryRefreshMs: PROCESS_DEFAULTS.advisoryRefreshMs,
  mandatoryRefreshMs: PROCESS_DEFAULTS.mandatoryRefreshMs,
  noExpirationTtlMs: REFRESH_DEFAULTS.noExpirationTtlMs,
};

/** When a record stops being handed out: its expiration, or the end of a long-term key's time. */
function usableUntil(record: CacheRecord): number {
  return expiresAtOfRecord(record, CLI_WINDOWS) ?? record.cachedAt;
}

/** `credcache inspect`: what the cache holds, without secrets. */
export async function run(argv: readonly string[], io: CommandIo): Promise<number> {
  const args = await commandLine(
    argv,
    FLAGS,
    "inspect",
    io,
    (given) => `to look at a key use --key "${given}"`,
  );
  if (!args) return 0;
  const { flags } = args;
  const requested = requestedKeys(flags.key, flags.source, io);
  return withStore(flags, io, async (store, spec) => {
    const { keys, listed } = await collectKeys(store, requested, wellKnownKeys(io.env));
    const now = Date.now();
    const entries: InspectEntry[] = [];
    for (const key of keys) {
      let read: EntryRead;
      try {
        read = await readEntry(store, key);
      } catch (error) {
        // One unreadable entry is reported in place; a store that refuses to work ends the command.
        if (!(error instanceof CommandFailedError)) throw error;
        entries.push({ key, status: "error", error: error.message });
        continue;
      }
      if ("rejected" in read) {
        entries.push({ key, status: "invalid", reason: `${read.rejected}, removed` });
        continue;
      }
      const { value } = read;
      if (value === undefined || value === null) {
        if (requested.includes(key)) entries.push({ key, status: "missing" });
        continue;
      }
      const parsed = parseRecord(value);
      if (!parsed.ok) {
        entries.push({ key, status: "invalid", reason: parsed.reason });
        continue;
      }
      const { record } = parsed;
      entries.push({
        key,
        status: "ok",
        source: record.source ?? null,
        accessKeyId: truncateAccessKeyId(record.accessKeyId),
        accountId: record.accountId ?? null,
        expiration: record.expiration === undefined ? null : new Date(record.expiration).toISOString(),
        usableUntil: new Date(usableUntil(record)).toISOString(),
        expiresInSeconds: Math.floor((usableUntil(record) - now) / 1000),
        window: windowOfRecord(record, now, CLI_WINDOWS),
        cachedAt: new Date(record.cachedAt).toISOString(),
      });
    }
    if (flags.json) {
      const report = { store: spec.label, listedKeys: listed, time: new Date(now).toISOString(), entries };
      // JSON escapes C0 control characters itself, not DEL and C1 (0x9b is a CSI on many terminals).
      const json = JSON.stringify(report, null, 2).replace(
        /[\u007f-\u009f]/g,
        (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`,
      );
      io.stdout.write(`${json}\n`);
    } else {
      io.stdout.write(formatEntries(entries, spec.label, listed, keys));
    }
    return entries.some((entry) => entry.status === "error") ? 1 : 0;
  });
}

function formatEntries(entries: InspectEntry[], label: string, listed: boolean, looked: string[]): string {
  const scope = listed
    ? ""
    : `\n(this store cannot list its keys; looked at: ${printable(looked.join(", "))}. Add --key KEY to look at others.)\n`;
  if (entries.length === 0)
    return `No cached credentials in ${printable(label)}.${scope ? `\n${scope.trimStart()}` : "\n"}`;
  // Key names, sources and reasons come from the store: never raw on a terminal.
  const rows = entries.map((entry) => rowOf(entry).map(printable));
  const table = formatTable(
    ["KEY", "SOURCE", "ACCESS KEY", "ACCOUNT", "EXPIRES (UTC)", "LEFT", "WINDOW"],
    rows,
  );
  return `Store: ${printable(label)}\n\n${table}${scope}`;
}

function rowOf(entry: InspectEntry): string[] {
  const blank = ["-", "-", "-", "-", "-"];
  if (entry.status === "missing") return [entry.key, ...blank, "missing"];
  if (entry.status === "invalid") return [entry.key, ...blank, `invalid (${entry.reason})`];
  if (entry.status === "error") return [entry.key, ...blank, `error: ${entry.error}`];
  const left =
    entry.expiresInSeconds <= 0
      ? `${formatDuration(entry.expiresInSeconds * 1000)} ago`
      : formatDuration(entry.expiresInSeconds * 1000);
  return [
    entry.key,
    entry.source ?? "-",
    entry.accessKeyId,
    entry.accountId ?? "-",
    // Long-term keys: when the cache stops handing them out and fetches them again.
    entry.expiration ?? `kept until ${entry.usableUntil}`,
    left,
    entry.window,
  ];
}
