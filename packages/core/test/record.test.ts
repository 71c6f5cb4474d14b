import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import { parseRecord, scrub, toRecord, truncateAccessKeyId } from "../src/index.js";
import { capture } from "./harness.js";

const good = { v: 1, accessKeyId: "ASIAEXAMPLE12345", secretAccessKey: "SECRETFIXTUREvalue", cachedAt: 1 };

describe("parseRecord: everything read back from a store is untrusted", () => {
  it("accepts a well-formed record, as an object or as JSON text", () => {
    expect(parseRecord(good)).toMatchObject({ ok: true, record: good });
    expect(parseRecord(JSON.stringify({ ...good, expiration: 5, sessionToken: "t" }))).toMatchObject({
      ok: true,
      record: { expiration: 5, sessionToken: "t" },
    });
  });

  const rejects: Array<[string, unknown, string]> = [
    ["garbage text", "\u0000\u00ff{{", "unparseable"],
    ["truncated JSON", JSON.stringify(good).slice(0, 20), "unparseable"],
    ["a number", 42, "not-an-object"],
    ["an array", [good], "not-an-object"],
    ["null-prototype-less class instance", new Date(), "not-an-object"],
    ["wrong version", { ...good, v: 2 }, "wrong-version"],
    ["missing version", { ...good, v: undefined }, "wrong-version"],
    ["missing secret", { ...good, secretAccessKey: undefined }, "missing-secretAccessKey"],
    ["empty access key", { ...good, accessKeyId: "" }, "bad-accessKeyId"],
    ["numeric token", { ...good, sessionToken: 5 }, "bad-sessionToken"],
    [
      "string expiration (a serialized Date)",
      { ...good, expiration: "2026-01-01T00:00:00Z" },
      "bad-expiration",
    ],
    ["NaN cachedAt", { ...good, cachedAt: Number.NaN }, "bad-cachedAt"],
    ["a huge blob", "x".repeat(1024 * 1024), "oversized"],
    ["a huge field", { ...good, sessionToken: "x".repeat(100_000) }, "oversized"],
  ];
  for (const [name, value, reason] of rejects) {
    it(`rejects ${name} (${reason})`, () => {
      expect(parseRecord(value)).toEqual({ ok: false, reason });
    });
  }

  it("does not let __proto__ or constructor keys through or pollute prototypes", () => {
    const hostile = JSON.parse(
      `{"v":1,"accessKeyId":"A","secretAccessKey":"B","cachedAt":1,"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}`,
    );
    const result = parseRecord(hostile);
    expect(result.ok).toBe(true);
    if (result.ok) {
      expect(Object.keys(result.record)).not.toContain("__proto__");
      expect(Object.keys(result.record)).not.toContain("constructor");
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("only reads own properties", () => {
    const inherited = Object.create({ v: 1, accessKeyId: "A", secretAccessKey: "B", cachedAt: 1 });
    expect(parseRecord(inherited).ok).toBe(false);
  });
});

describe("records never show secrets", () => {
  it("inspect of a record redacts the secret and token and truncates the key id", () => {
    const record = toRecord(
      {
        accessKeyId: "ASIAEXAMPLE12345",
        secretAccessKey: "SECRETFIXTUREinspect",
        sessionToken: "TOKENFIXTUREinspect",
      },
      1,
    );
    const shown = inspect(record);
    capture(shown);
    expect(shown).not.toContain("SECRETFIXTUREinspect");
    expect(shown).not.toContain("TOKENFIXTUREinspect");
    expect(shown).toContain("ASIA…2345");
    // JSON (what stores see) is complete.
    expect(JSON.parse(JSON.stringify(record)).secretAccessKey).toBe("SECRETFIXTUREinspect");
  });

  it("truncateAccessKeyId keeps only the ends", () => {
    expect(truncateAccessKeyId("ASIAABCDEFGHIJKL1234")).toBe("ASIA…1234");
    expect(truncateAccessKeyId("short")).toBe("sh…");
  });

  it("scrub removes given secrets and anything shaped like an AWS secret", () => {
    const awsShaped = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const text = scrub(`bad ${awsShaped} and sekrit-value-123 but keep ${"ab12".repeat(16)}`, [
      "sekrit-value-123",
    ]);
    expect(text).not.toContain(awsShaped);
    expect(text).not.toContain("sekrit-value-123");
    expect(text).toContain("ab12ab12");
  });
});
