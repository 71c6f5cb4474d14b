// The option tables in the READMEs state defaults; the code states them too. This test
// reads both and fails when they disagree, so the manual cannot drift from the code again.
//
// Where the code's default comes from, in order:
//   1. an exported defaults object or constant (core's REFRESH_DEFAULTS / PROCESS_DEFAULTS
//      once they are exported, PRESET_METADATA_MAX_RETRIES, DEFAULT_CACHE_KEY, ...);
//   2. the `@default` TSDoc tag where the option is declared (lru-cache style).
// A README row whose default is a literal (a number, a duration, true/false, a quoted
// string) and that neither source knows is reported, so a new option cannot go unchecked.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as core from "@credcache/core";
import { describe, expect, it } from "vitest";
import { helpText } from "../packages/cli/src/help.js";
import { PRESET_METADATA_MAX_RETRIES } from "../packages/core/src/presets.js";

const root = join(import.meta.dirname, "..");
const read = (path: string) => readFileSync(join(root, path), "utf8");
const packageDirs = readdirSync(join(root, "packages")).map((name) => `packages/${name}`);

type Value = number | boolean | string;
const UNITS: Record<string, number> = { ms: 1, s: 1000, min: 60_000, h: 3_600_000 };

/** A stated default as a value, or undefined when it is not a literal ("none", "the SDK's"). */
function literal(text: string): Value | undefined {
  const t = text
    .replace(/\(.*\)$/, "")
    .replace(/[`"]/g, "")
    .trim();
  if (t === "true" || t === "false") return t === "true";
  const duration = /^([\d_,.]+)\s*(ms|s|min|h)$/.exec(t);
  if (duration) return Number(duration[1]!.replace(/[_,]/g, "")) * UNITS[duration[2]!]!;
  if (/^[\d_,]+$/.test(t)) return Number(t.replace(/[_,]/g, ""));
  if (/^`?"[^"]*"`?$/.test(text.trim().replace(/\s*\(.*\)$/, ""))) return t; // a "string"
  return undefined;
}

interface Row {
  file: string;
  names: string[];
  defaults: string[];
  /** The exported defaults object a `<!-- defaults: NAME -->` line above the table names. */
  source?: string;
}

/** Rows of every markdown table with an "option" and a "default" column. */
function optionRows(file: string): Row[] {
  const rows: Row[] = [];
  let columns: { option: number; def: number } | undefined;
  let source: string | undefined;
  for (const line of read(file).split("\n")) {
    if (!line.startsWith("|")) {
      columns = undefined;
      const marker = /^<!-- defaults: (\w+) -->$/.exec(line.trim());
      if (marker) source = marker[1];
      else if (line.trim() !== "") source = undefined;
      continue;
    }
    const cells = line
      .slice(1, -1)
      .split("|")
      .map((c) => c.trim().toLowerCase());
    if (!columns) {
      const option = cells.indexOf("option");
      const def = cells.indexOf("default");
      if (option !== -1 && def !== -1) columns = { option, def };
      continue;
    }
    if (/^-+$/.test(cells[0]!.replace(/\s/g, ""))) continue;
    const raw = line.slice(1, -1).split("|");
    // `a` / `b` in the option cell pairs with "x / y" in the default cell.
    const names = [...raw[columns.option]!.matchAll(/`(--)?([\w-]+)[^`]*`/g)].map((m) => m[2]!);
    const defaults = raw[columns.def]!.split(" / ").map((d) => d.trim());
    rows.push({
      file,
      names,
      defaults: names.length === defaults.length ? defaults : [raw[columns.def]!.trim()],
      ...(source && { source }),
    });
  }
  return rows;
}

/** `@default` tags in a package's sources: option name -> stated value. */
function tsdocDefaults(dir: string): Map<string, string> {
  const found = new Map<string, string>();
  const src = join(root, dir, "src");
  for (const file of readdirSync(src, { recursive: true }) as string[]) {
    if (!file.endsWith(".ts")) continue;
    const text = readFileSync(join(src, file), "utf8");
    for (const m of text.matchAll(
      /@default\s+([^\n]*?)\s*(?:\*\/)?\n(?:\s*\*[^\n]*\n)*?\s*(?:\*\/\s*\n\s*)?(?:readonly\s+)?(\w+)\??:/g,
    )) {
      found.set(m[2]!, m[1]!.trim());
    }
  }
  return found;
}

// 1. Exported defaults. Point these at core's defaults export when it lands: whatever the
//    running core exports wins over the TSDoc fallback.
const exported = core as Record<string, unknown>;
const refreshDefaults = (exported.REFRESH_DEFAULTS ?? {}) as Record<string, number>;
const processDefaults = exported.PROCESS_DEFAULTS as
  | { minValidityMs: number; cacheTimeoutMs: number }
  | undefined;
/** Today the CLI keeps these as module constants in commands/process.ts. */
function cliConstant(name: string): number {
  const m = new RegExp(`const ${name} = ([\\d_]+)`).exec(read("packages/cli/src/commands/process.ts"));
  if (!m) throw new Error(`${name} not found in packages/cli/src/commands/process.ts`);
  return Number(m[1]!.replace(/_/g, ""));
}
const CLI_DEFAULTS: Record<string, Value> = {
  timeout: 1000, // the SDK's own default (@smithy/credential-provider-imds DEFAULT_TIMEOUT)
  retries: PRESET_METADATA_MAX_RETRIES,
  "session-name": core.DEFAULT_SESSION_NAME,
  "min-validity": processDefaults
    ? processDefaults.minValidityMs / 1000
    : cliConstant("DEFAULT_MIN_VALIDITY_S"),
  "cache-timeout": processDefaults?.cacheTimeoutMs ?? cliConstant("DEFAULT_CACHE_TIMEOUT_MS"),
};

function codeDefault(file: string, name: string): Value | undefined {
  if (file === "packages/cli/README.md") return CLI_DEFAULTS[name];
  if (name === "key") return core.DEFAULT_CACHE_KEY;
  if (refreshDefaults[name] !== undefined) return refreshDefaults[name];
  const dir = file === "README.md" ? "packages/core" : file.replace(/\/README\.md$/, "");
  const tag = tsdocDefaults(dir).get(name);
  if (tag === undefined) return undefined;
  if (tag.includes("+")) {
    // "lockTtlMs + 2_000": an expression over another default.
    const [base, add] = tag.split("+").map((s) => s.trim());
    const baseValue = codeDefault(file, base!);
    return typeof baseValue === "number" ? baseValue + Number(add!.replace(/_/g, "")) : undefined;
  }
  return literal(tag.startsWith('"') ? tag : tag.replace(/\s.*$/, ""));
}

/** A default from the exported object a table is marked with; options it does not hold (booleans) by their `@default` tag. */
function markedDefault(file: string, source: string, name: string): Value | undefined {
  const defaults = exported[source] as Record<string, Value> | undefined;
  if (!defaults) throw new Error(`<!-- defaults: ${source} -->: @credcache/core exports no ${source}`);
  return defaults[name] ?? codeDefault(file, name);
}

const readmes = ["README.md", ...packageDirs.map((d) => `${d}/README.md`)].filter((f) => {
  try {
    read(f);
    return true;
  } catch {
    return false;
  }
});

describe("README option tables state the code's defaults", () => {
  for (const file of readmes) {
    const rows = optionRows(file);
    if (rows.length === 0) continue;
    it(file, () => {
      const wrong: string[] = [];
      const unknown: string[] = [];
      const checked: string[] = [];
      for (const row of rows) {
        row.names.forEach((name, i) => {
          const stated = literal(row.defaults[i] ?? "");
          if (stated === undefined) return;
          const code = row.source ? markedDefault(file, row.source, name) : codeDefault(file, name);
          if (code === undefined) unknown.push(`${name} (${row.defaults[i]})`);
          else if (code !== stated) wrong.push(`${name}: README says ${row.defaults[i]}, the code ${code}`);
          else checked.push(name);
        });
      }
      expect(wrong, `${file}: defaults that disagree with the code`).toEqual([]);
      expect(unknown, `${file}: give these options a @default tag or an exported default`).toEqual([]);
      expect(checked.length, `${file}: no default was checked; is the table still parsed?`).toBeGreaterThan(
        0,
      );
    });
  }

  it("credcache process --help states the same defaults as the code", () => {
    const help = helpText("process");
    for (const [flag, value] of Object.entries(CLI_DEFAULTS)) {
      // The flag's text runs until the next line that starts with an option.
      const block = new RegExp(`\\n  --${flag} [\\s\\S]*?(?=\\n  -|\\n\\n)`).exec(help)?.[0] ?? "";
      const line = /\(default ([^,:)]+)/.exec(block);
      expect(line, `--${flag} states a default in the help`).not.toBeNull();
      expect(literal(line![1]!.trim()) ?? line![1]!.trim(), `--${flag}`).toBe(value);
    }
  });
});

describe("README defaults tables cover the exported defaults", () => {
  it("README.md: every option in REFRESH_DEFAULTS and PROCESS_DEFAULTS has a row in its marked table", () => {
    const rows = optionRows("README.md");
    const named = (source: string) =>
      new Set(rows.filter((r) => r.source === source).flatMap((r) => r.names));
    // keepExpiredMs is not an option: it is stated in the text ("1 h past expiry").
    const options = (defaults: object) => Object.keys(defaults).filter((k) => k !== "keepExpiredMs");
    expect(options(core.REFRESH_DEFAULTS).filter((k) => !named("REFRESH_DEFAULTS").has(k))).toEqual([]);
    expect(options(core.PROCESS_DEFAULTS).filter((k) => !named("PROCESS_DEFAULTS").has(k))).toEqual([]);
  });
});

// Statements about the refresh model, each tied to the rule in the policy that makes it true.
describe("the docs say what the refresh model does", () => {
  const now = Date.UTC(2026, 10, 30, 12, 0, 0);
  const MIN = 60_000;
  const policy = {
    advisoryMs: 15 * MIN,
    advisoryPointMs: 15 * MIN,
    mandatoryMs: 10 * MIN,
    minValidityMs: 0,
    retryBaseMs: 5_000,
    retryMaxMs: 60_000,
    noExpirationTtlMs: 15 * MIN,
  };

  it("a set that arrives expired (not extended by the SDK) is refused, not served as extended", () => {
    expect(core.classifyFetched(now, now - 1)).toMatchObject({ kind: "expired" });
    expect(read("README.md")).not.toMatch(/arrives expired,? or[^.]*served as extended/);
    expect(read("README.md")).toMatch(/arrives expired and not\s+extended is refused/);
    expect(read("docs/porting-from-php.md")).toMatch(/arrive already expired are rejected/);
  });

  it("a caller in the mandatory window is served at once; the refresh runs behind", () => {
    const record = {
      v: 1 as const,
      accessKeyId: "A",
      secretAccessKey: "s",
      expiration: now + 8 * MIN,
      cachedAt: now - 52 * MIN,
    };
    const t = core.timelineOf(record, policy);
    expect(core.windowAt(t, now)).toBe("mandatory");
    expect(core.decide(now, t, core.NO_SHARED_STATE, 12_000)).toBe("serve-and-refresh");
    for (const file of ["packages/core/README.md", "docs/porting-from-php.md"]) {
      const text = read(file).replace(/\s+/g, " ");
      expect(text, file).not.toMatch(/waited for only below the mandatory window|before answering from/);
    }
  });
});

// Statements about keys, adapter loading and encryption, each checked against the code.
describe("the docs say what the keys and the loader are", () => {
  const docs = [...readmes, "SECURITY.md", "docs/porting-from-php.md"];

  it("the IMDS key is imds:<endpoint>:<host identity>, never the host name alone", () => {
    const key = core.instanceMetadataKey({
      host: "instance-id:i-0abc",
      env: { AWS_EC2_METADATA_SERVICE_ENDPOINT: "http://127.0.0.1:1338" },
    });
    expect(key).toBe("imds:http://127.0.0.1:1338:instance-id:i-0abc");
    for (const file of docs) {
      for (const stated of read(file).match(/imds:<[^`]*?>:<[^>]*>/g) ?? []) {
        expect(stated, file).toMatch(/^imds:<(IMDS )?endpoint>:<host identity>/);
      }
    }
  });

  it("adapters are never loaded from the working directory", () => {
    for (const file of docs) {
      expect(read(file).replace(/\s+/g, " "), file).not.toMatch(/then from the (current )?working directory/);
    }
  });

  it("encryptedCache's associated data is the version, the namespace and the key", () => {
    for (const file of docs) {
      expect(read(file).replace(/\s+/g, " "), file).not.toMatch(/the cache key is the associated data/i);
    }
  });
});
