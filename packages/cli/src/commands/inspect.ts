import { parseRecord, type RefreshWindow, truncateAccessKeyId, windowOfRecord } from "@credcache/core";
import { parseArgs } from "../args.js";
import { CommandFailedError, UsageError } from "../errors.js";
import { formatDuration, formatTable } from "../format.js";
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
      /** ISO 8601, or null for credentials that never expire. */
      expiration: string | null;
      expiresInSeconds: number | null;
      /** Core's refresh window with its default windows (15 / 10 min). */
      window: RefreshWindow;
      cachedAt: string;
    }
  | { key: string; status: "missing" }
  | { key: string; status: "invalid"; reason: string }
  | { key: string; status: "error"; error: string };

/** `credcache inspect`: what the cache holds, without secrets. */
export async function run(argv: readonly string[], io: CommandIo): Promise<number> {
  const { flags, positionals } = parseArgs(argv, FLAGS, "inspect");
  if (flags.help) {
    io.stdout.write((await import("../help.js")).helpText("inspect"));
    return 0;
  }
  if (positionals.length > 0) {
    throw new UsageError(
      `unexpected argument "${positionals[0]}"; to look at a key use --key "${positionals[0]}"`,
    );
  }
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
        expiresInSeconds:
          record.expiration === undefined ? null : Math.floor((record.expiration - now) / 1000),
        window: windowOfRecord(record, now),
        cachedAt: new Date(record.cachedAt).toISOString(),
      });
    }
    if (flags.json) {
      const report = { store: spec.label, listedKeys: listed, time: new Date(now).toISOString(), entries };
      io.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    } else {
      io.stdout.write(formatEntries(entries, spec.label, listed, keys));
    }
    return entries.some((entry) => entry.status === "error") ? 1 : 0;
  });
}

function formatEntries(entries: InspectEntry[], label: string, listed: boolean, looked: string[]): string {
  const scope = listed
    ? ""
    : `\n(this store cannot list its keys; looked at: ${looked.join(", ")}. Add --key KEY to look at others.)\n`;
  if (entries.length === 0)
    return `No cached credentials in ${label}.${scope ? `\n${scope.trimStart()}` : "\n"}`;
  const rows = entries.map(rowOf);
  const table = formatTable(
    ["KEY", "SOURCE", "ACCESS KEY", "ACCOUNT", "EXPIRES (UTC)", "LEFT", "WINDOW"],
    rows,
  );
  return `Store: ${label}\n\n${table}${scope}`;
}

function rowOf(entry: InspectEntry): string[] {
  const blank = ["-", "-", "-", "-", "-"];
  if (entry.status === "missing") return [entry.key, ...blank, "missing"];
  if (entry.status === "invalid") return [entry.key, ...blank, `invalid (${entry.reason})`];
  if (entry.status === "error") return [entry.key, ...blank, `error: ${entry.error}`];
  const left =
    entry.expiresInSeconds === null
      ? "-"
      : entry.expiresInSeconds <= 0
        ? `${formatDuration(entry.expiresInSeconds * 1000)} ago`
        : formatDuration(entry.expiresInSeconds * 1000);
  return [
    entry.key,
    entry.source ?? "-",
    entry.accessKeyId,
    entry.accountId ?? "-",
    entry.expiration ?? "never",
    left,
    entry.window,
  ];
}
