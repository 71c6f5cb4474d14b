import { MAX_KEY_LENGTH } from "@credcache/core";
import { type Check, expectArgumentError } from "../check.js";

/** A JSON value whose JSON text is `bytes` characters long (when that is enough for every JSON type). */
export function richValue(bytes: number, seed: string): Record<string, unknown> {
  const base = {
    seed,
    text: "plain ascii",
    unicode: 'héllo wörld — ключ 鍵 🔑 \u2028 "quoted" \\back\\slash\\ \n\t',
    empty: "",
    integer: 42,
    negative: -7,
    float: 1234.5678,
    big: Number.MAX_SAFE_INTEGER,
    tiny: 1e-7,
    zero: 0,
    yes: true,
    no: false,
    nothing: null,
    list: [1, "two", { three: 3 }, [4, [5]], null, false],
    emptyList: [],
    emptyObject: {},
    nested: { a: { b: { c: { d: { e: "deep" } } } } },
  };
  const fill = bytes - JSON.stringify({ ...base, padding: "" }).length;
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  const padding = alphabet.repeat(Math.ceil(Math.max(0, fill) / alphabet.length)).slice(0, Math.max(0, fill));
  return { ...base, padding };
}

export const basicChecks: Check[] = [
  {
    name: "a missing key resolves to undefined",
    async run(t) {
      const store = await t.store();
      t.expect(await store.get(t.key("missing"))).toBeUndefined();
    },
  },
  {
    name: "set then get returns the value",
    async run(t) {
      const store = await t.store();
      const key = t.key("set");
      const value = { hello: "world", n: 1 };
      t.expect(await store.set(key, value)).toBeUndefined();
      t.expect(await store.get(key)).toEqual(value);
    },
  },
  {
    name: "overwriting replaces the value (a shorter value leaves nothing of the longer one)",
    async run(t) {
      const store = await t.store();
      const key = t.key("overwrite");
      await store.set(key, richValue(4096, "long"));
      await store.set(key, { short: true });
      t.expect(await store.get(key)).toEqual({ short: true });
      await store.set(key, "a string now");
      t.expect(await store.get(key)).toEqual("a string now");
    },
  },
  {
    name: "remove deletes the entry; removing a missing key resolves",
    async run(t) {
      const store = await t.store();
      const key = t.key("remove");
      await store.set(key, { here: true });
      t.expect(await store.remove(key)).toBeUndefined();
      t.expect(await store.get(key), "get after remove").toBeUndefined();
      await store.remove(key);
      await store.remove(t.key("never-set"));
      await store.set(key, { back: true });
      t.expect(await store.get(key), "set after remove").toEqual({ back: true });
    },
  },
  {
    name: "keys are isolated from each other (prefixes, case, whitespace)",
    async run(t) {
      const store = await t.store();
      const base = t.key("isolated");
      const keys = [base, `${base}x`, `${base} `, base.toUpperCase(), `${base}/`, `x${base}`];
      for (const [i, key] of keys.entries()) await store.set(key, { i });
      for (const [i, key] of keys.entries()) t.expect(await store.get(key), `key #${i}`).toEqual({ i });
      await store.remove(base);
      t.expect(await store.get(base)).toBeUndefined();
      for (const [i, key] of keys.entries()) {
        if (i > 0) t.expect(await store.get(key), `key #${i} after removing #0`).toEqual({ i });
      }
    },
  },
  {
    name: "unusual keys work and stay distinct (unicode, slashes, .., backslashes, 1 KiB)",
    async run(t) {
      const store = await t.store();
      const token = t.keyToken;
      const longPrefix = `credcache-suite:long:${token}:`;
      const keys = [
        `credcache-suite:ключ-鍵-🔑-é:${token}`,
        `credcache-suite/x/${token}`,
        `credcache-suite_x_${token}`,
        `credcache-suite%2Fx%2F${token}`,
        `credcache-suite:x:${token}`,
        `credcache-suite\\x\\${token}`,
        `../../../../../../tmp/credcache-suite-${token}`,
        `credcache-suite/../${token}`,
        `credcache-suite/${token}/..`,
        `credcache-suite/${token}/.`,
        `credcache-suite x\t${token}`,
        `credcache-suite:"quoted'*?<>|:${token}`,
        longPrefix + "k".repeat(1024 - longPrefix.length),
        longPrefix + "k".repeat(1023 - longPrefix.length),
      ];
      t.expect(new Set(keys).size).toBe(keys.length);
      for (const [i, key] of keys.entries()) await store.set(key, { i, key });
      for (const [i, key] of keys.entries()) {
        t.expect(await store.get(key), `get ${JSON.stringify(key.slice(0, 60))}`).toEqual({ i, key });
      }
      for (const key of keys) await store.remove(key);
      for (const key of keys) {
        t.expect(
          await store.get(key),
          `get after remove ${JSON.stringify(key.slice(0, 60))}`,
        ).toBeUndefined();
      }
    },
  },
  {
    name: "values up to 16 KiB round-trip unchanged (objects, arrays, strings, numbers, booleans)",
    async run(t) {
      const store = await t.store();
      const big = richValue(16 * 1024 - 1, "16k");
      const values: Array<[string, unknown]> = [
        ["16 KiB object", big],
        ["4 KiB object", richValue(4096, "4k")],
        ["unicode string", 'ключ 鍵 🔑 \u0001 \u2028 "q" \\ \n end'],
        ["16 KiB string", "s".repeat(16 * 1024 - 2)],
        ["integer", 1234567],
        ["float", -0.5],
        ["true", true],
        ["false", false],
        ["array", [1, "a", null, { b: [true] }]],
        ["empty object", {}],
        ["object with null field", { a: null }],
      ];
      t.expect(JSON.stringify(big).length).toBe(16 * 1024 - 1);
      const keys = values.map(([label]) => t.key(`value-${label.replace(/ /g, "-")}`));
      for (const [i, [, value]] of values.entries()) await store.set(keys[i]!, value);
      for (const [i, [label, value]] of values.entries()) {
        t.expect(await store.get(keys[i]!), label).toEqual(value);
      }
    },
  },
  {
    name: "a value is stored, not referenced: changing the object after set changes nothing",
    async run(t) {
      const store = await t.store();
      const key = t.key("copy");
      const value = { a: 1, inner: { b: 2 } };
      await store.set(key, value);
      value.a = 99;
      value.inner.b = 99;
      t.expect(await store.get(key)).toEqual({ a: 1, inner: { b: 2 } });
    },
  },
  {
    name: "bad input rejects with CacheArgumentError and loses nothing",
    async run(t) {
      const store = await t.store();
      const key = t.key("bad-input");
      const kept = { kept: true };
      await store.set(key, kept);
      const tooLong = `${key}:${"x".repeat(MAX_KEY_LENGTH)}`;
      const notAString = 42 as unknown as string;
      await expectArgumentError('get("")', () => store.get(""));
      await expectArgumentError('set("", value)', () => store.set("", { lost: true }));
      await expectArgumentError('remove("")', () => store.remove(""));
      await expectArgumentError("get(42)", () => store.get(notAString));
      await expectArgumentError(`set(a ${tooLong.length}-character key)`, () => store.set(tooLong, 1));
      await expectArgumentError("set(key, value, -1)", () => store.set(key, { lost: true }, -1));
      await expectArgumentError("set(key, value, NaN)", () => store.set(key, { lost: true }, Number.NaN));
      t.expect(await store.get(key), "the value stored before the bad calls").toEqual(kept);
    },
  },
];
