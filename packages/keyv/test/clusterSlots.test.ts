import { describe, expect, it } from "vitest";
import { redirectOf, SLOT_COUNT, slotOf, slotTable } from "../src/clusterSlots.js";
import { hashTagged, untagged } from "../src/hashTag.js";

describe("Redis Cluster slots (pure)", () => {
  it("hashes keys as Redis does (CLUSTER KEYSLOT), hash tags included", () => {
    // Values from CLUSTER KEYSLOT on redis-server 7.
    expect(slotOf("foo")).toBe(12182);
    expect(slotOf("123456789")).toBe(12739);
    expect(slotOf("{user1000}.following")).toBe(slotOf("{user1000}.followers"));
    expect(slotOf("{user1000}.following")).toBe(slotOf("user1000"));
    // An empty tag is no tag: the whole key is hashed.
    expect(slotOf("{}foo")).not.toBe(slotOf("foo"));
    expect(slotOf("foo{}{bar}")).toBe(slotOf("foo{}{bar}"));
    expect(slotOf("foo{{bar}}zap")).toBe(slotOf("{bar"));
    expect(slotOf("ключ 🔑")).toBeLessThan(SLOT_COUNT);
  });

  it("reads MOVED and ASK, an empty host meaning the one that was asked", () => {
    expect(redirectOf("MOVED 3999 127.0.0.1:6381", "seed")).toEqual({
      kind: "MOVED",
      slot: 3999,
      node: { host: "127.0.0.1", port: 6381 },
    });
    expect(redirectOf("ASK 1 :6380", "seed")).toEqual({
      kind: "ASK",
      slot: 1,
      node: { host: "seed", port: 6380 },
    });
    expect(redirectOf("MOVED 7 [::1]:7000", "seed")?.node).toEqual({ host: "::1", port: 7000 });
    expect(redirectOf("ERR MOVED somewhere", "seed")).toBeUndefined();
  });

  it("builds the slot table from CLUSTER SLOTS and refuses what is not one", () => {
    const table = slotTable(
      [
        [0, 5460, ["10.0.0.1", 6379, "id1"], ["10.0.0.4", 6379, "id4"]],
        [5461, 16383, ["", 6380, "id2"]],
      ],
      "cache.example.com",
    );
    expect(table?.[0]).toEqual({ host: "10.0.0.1", port: 6379 });
    expect(table?.[16383]).toEqual({ host: "cache.example.com", port: 6380 });
    expect(slotTable("OK", "seed")).toBeUndefined();
    expect(slotTable([[0, 99999, ["h", 1, "id"]]], "seed")).toBeUndefined();
    expect(slotTable([[0, 1, ["h", "6379", "id"]]], "seed")).toBeUndefined();
  });

  it("tags a key, its refresh state and names back, one to one", () => {
    for (const key of ["k", "sts:arn:aws:iam::1:role/x", "a}b", "x}#refresh", "{x}", "#refresh"]) {
      expect(untagged(hashTagged(key)), key).toBe(key);
    }
    expect(hashTagged("k#refresh")).toBe("{k}#refresh");
    expect(slotOf(hashTagged("k#refresh"))).toBe(slotOf(hashTagged("k")));
    expect(untagged("plain")).toBeUndefined();
  });
});
