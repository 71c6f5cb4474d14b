import { describe, expect, it } from "vitest";
import {
  expiresAtOfRecord,
  PROCESS_DEFAULTS,
  REFRESH_DEFAULTS,
  timelineOf,
  windowOfRecord,
} from "../src/index.js";

const MIN = 60_000;
const T0 = Date.UTC(2026, 10, 30, 12, 0, 0);
const record = { expiration: T0 + 60 * MIN, cachedAt: T0 };
const left = (ms: number) => T0 + 60 * MIN - ms;

describe("windowOfRecord: the policy's windows, as a tool shows them", () => {
  it("the old two-argument call: the library's 15/10 min windows", () => {
    expect(windowOfRecord(record, left(16 * MIN))).toBe("fresh");
    expect(windowOfRecord(record, left(15 * MIN))).toBe("advisory");
    expect(windowOfRecord(record, left(10 * MIN))).toBe("mandatory");
    expect(windowOfRecord(record, left(0))).toBe("expired");
    expect(windowOfRecord({ expiration: T0 + 60 * MIN }, left(16 * MIN))).toBe("fresh");
  });

  it("judged by the windows given: the CLI's 25/20 min", () => {
    expect(windowOfRecord(record, left(22 * MIN), PROCESS_DEFAULTS)).toBe("advisory");
    expect(windowOfRecord(record, left(19 * MIN), PROCESS_DEFAULTS)).toBe("mandatory");
    expect(windowOfRecord(record, left(22 * MIN))).toBe("fresh");
  });

  it("static keys are kept noExpirationTtlMs, not forever", () => {
    const keys = { cachedAt: T0 };
    expect(windowOfRecord(keys, T0 + 14 * MIN)).toBe("fresh");
    expect(windowOfRecord(keys, T0 + 15 * MIN)).toBe("expired");
    expect(windowOfRecord(keys, T0 + 15 * MIN, { noExpirationTtlMs: 30 * MIN })).toBe("fresh");
    expect(expiresAtOfRecord(keys)).toBe(T0 + REFRESH_DEFAULTS.noExpirationTtlMs);
    expect(expiresAtOfRecord(record)).toBe(record.expiration);
  });

  it("agrees with the policy's timeline at every minute", () => {
    const policy = {
      advisoryMs: REFRESH_DEFAULTS.advisoryRefreshMs,
      advisoryPointMs: REFRESH_DEFAULTS.advisoryRefreshMs,
      mandatoryMs: REFRESH_DEFAULTS.mandatoryRefreshMs,
      minValidityMs: 0,
      retryBaseMs: REFRESH_DEFAULTS.retryBaseMs,
      retryMaxMs: REFRESH_DEFAULTS.retryMaxMs,
      noExpirationTtlMs: REFRESH_DEFAULTS.noExpirationTtlMs,
    };
    const t = timelineOf({ v: 1, accessKeyId: "A", secretAccessKey: "s", ...record }, policy);
    for (let m = 0; m <= 70; m++) {
      const now = T0 + m * MIN;
      const expected =
        now >= t.expiresAt
          ? "expired"
          : now >= t.mandatoryAt
            ? "mandatory"
            : now >= t.freshUntil
              ? "advisory"
              : "fresh";
      expect(windowOfRecord(record, now)).toBe(expected);
    }
  });
});

describe("parseRefreshState: text from a store reaches messages escaped", () => {
  it("C0 and C1 control characters in a stored error become \\xNN", async () => {
    const { parseRefreshState } = await import("../src/index.js");
    const state = parseRefreshState({
      v: 1,
      kind: "refresh-state",
      failures: 1,
      nextAttemptAt: 0,
      error: { name: "Error", message: "down \u001b[2J\u009b31m\u0007 ok" },
    });
    expect(state?.error?.message).toBe("down \\x1b[2J\\x9b31m\\x07 ok");
  });
});
