import { describe, expect, it } from "vitest";
import { UsageError } from "../src/errors.js";
import { allowedHosts, parseListen } from "../src/serve/listen.js";
import { tokenChecker } from "../src/serve/token.js";

describe("serve --listen", () => {
  it.each([
    ["127.0.0.1:9911", { host: "127.0.0.1", port: 9911 }],
    ["127.1.2.3:0", { host: "127.1.2.3", port: 0 }],
    ["[::1]:80", { host: "::1", port: 80 }],
  ])("accepts %s", (text, address) => {
    expect(parseListen(text)).toEqual(address);
  });

  it.each([
    "0.0.0.0:9911",
    "192.168.1.10:9911",
    "[::]:9911",
    "[::ffff:127.0.0.1]:9911",
    "localhost:9911",
    "127.0.0.1",
    "127.0.0.1:70000",
    "128.0.0.1:9911",
    "127.0.0.256:9911",
  ])("refuses %s with a usage error", (text) => {
    expect(() => parseListen(text)).toThrow(UsageError);
  });

  it("lets in the Host headers a local SDK sends, and only those", () => {
    expect([...allowedHosts({ host: "127.0.0.1", port: 9911 })].sort()).toEqual([
      "127.0.0.1:9911",
      "localhost:9911",
    ]);
    expect([...allowedHosts({ host: "::1", port: 9911 })].sort()).toEqual(["[::1]:9911", "localhost:9911"]);
    // Only 127.0.0.1 is "localhost"; other loopback addresses are matched literally.
    expect([...allowedHosts({ host: "127.0.0.2", port: 9911 })]).toEqual(["127.0.0.2:9911"]);
    // Port 80 may be left out of the header.
    expect(allowedHosts({ host: "127.0.0.1", port: 80 }).has("127.0.0.1")).toBe(true);
  });
});

describe("serve token check", () => {
  it("accepts exactly the token: no prefix, no suffix, no Bearer, no case change", () => {
    const check = tokenChecker("a".repeat(64));
    expect(check("a".repeat(64))).toBe(true);
    for (const wrong of [
      undefined,
      "",
      "a".repeat(63),
      "a".repeat(65),
      `Bearer ${"a".repeat(64)}`,
      "A".repeat(64),
    ]) {
      expect(check(wrong)).toBe(false);
    }
  });
});
