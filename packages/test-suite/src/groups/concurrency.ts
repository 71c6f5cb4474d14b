import { randomUUID } from "node:crypto";
import { type Check, preview } from "../check.js";
import type { ExpectFunction } from "../types.js";

/** A value whose every part says who wrote it, so a torn or foreign value cannot pass for a good one. */
export interface TaggedValue {
  writer: number;
  token: string;
  payload: string;
  tail: { writer: number; token: string };
}

export function taggedValue(writer: number, payloadChars = 4096): TaggedValue {
  const token = randomUUID();
  const letter = String.fromCharCode(65 + (writer % 26));
  return { writer, token, payload: letter.repeat(payloadChars), tail: { writer, token } };
}

/** Fails unless `value` is undefined or exactly one of `written`. */
export function expectOneOf(
  expect: ExpectFunction,
  written: ReadonlyMap<number, TaggedValue>,
  value: unknown,
  when: string,
): void {
  if (value === undefined) return;
  const writer = (value as Partial<TaggedValue> | null)?.writer;
  const original = typeof writer === "number" ? written.get(writer) : undefined;
  if (!original) throw new Error(`${when} returned a value this test never wrote: ${preview(value)}`);
  expect(value, `${when} returned a torn or altered copy of writer ${writer}'s value`).toEqual(original);
}

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

export const concurrencyChecks: Check[] = [
  {
    name: "200 parallel mixed operations on one key never return a torn or foreign value",
    timeoutMs: 30_000,
    async run(t) {
      const store = await t.store();
      const key = t.key("concurrency");
      const written = new Map<number, TaggedValue>();
      const seed = taggedValue(0, 8192);
      written.set(0, seed);
      await store.set(key, seed);

      type Op = () => Promise<unknown>;
      const ops: Op[] = [];
      const reads: Array<{ op: number; value: unknown }> = [];
      for (let i = 1; i <= 200; i++) {
        const kind = i % 20 < 8 ? "set" : i % 20 < 17 ? "get" : "remove";
        if (kind === "set") {
          const value = taggedValue(i, 1024 + ((i * 997) % 8192));
          written.set(i, value);
          ops.push(() => store.set(key, value));
        } else if (kind === "get") {
          ops.push(async () => reads.push({ op: i, value: await store.get(key) }));
        } else {
          ops.push(() => store.remove(key));
        }
      }
      // Start every operation in the same tick, in random order.
      await Promise.all(shuffle(ops).map((op) => op()));
      t.expect(reads).toHaveLength(90);
      for (const read of reads) expectOneOf(t.expect, written, read.value, `get #${read.op}`);
      expectOneOf(t.expect, written, await store.get(key), "the final get");
    },
  },
  {
    name: "parallel writes to 50 different keys all land on their own key",
    timeoutMs: 30_000,
    async run(t) {
      const store = await t.store();
      const entries = Array.from({ length: 50 }, (_, i) => ({
        key: t.key(`parallel-${i}`),
        value: taggedValue(i, 512),
      }));
      await Promise.all(entries.map(({ key, value }) => store.set(key, value)));
      const values = await Promise.all(entries.map(({ key }) => store.get(key)));
      for (const [i, value] of values.entries()) t.expect(value, `key #${i}`).toEqual(entries[i]!.value);
    },
  },
];
