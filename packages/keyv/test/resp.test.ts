import { Keyv } from "keyv";
import { describe, expect, it } from "vitest";
import { deserializeKeyv, serializeKeyv } from "../src/keyvSerialize.js";
import {
  ErrorReply,
  encodeCommand,
  MAX_REPLY_BYTES,
  ProtocolError,
  type Reply,
  ReplyParser,
  ReplyTooLargeError,
} from "../src/resp.js";

/** One of each reply type, several in one stream, with bytes that look like RESP inside a bulk string. */
const STREAM = Buffer.from(
  [
    "+OK\r\n",
    "-ERR wrong number of arguments\r\n",
    ":42\r\n",
    ":-7\r\n",
    "$11\r\nkey\r\n:1\r\n*0\r\n", // a bulk string holding CRLFs and RESP-looking text
    "$0\r\n\r\n",
    "$-1\r\n",
    `$${Buffer.byteLength("ключ 🔑")}\r\nключ 🔑\r\n`,
    "*-1\r\n",
    "*0\r\n",
    "*2\r\n$1\r\n0\r\n*3\r\n$5\r\nns::a\r\n$-1\r\n*1\r\n:5\r\n",
  ].join(""),
);

const EXPECTED: Reply[] = [
  "OK",
  new ErrorReply("ERR wrong number of arguments"),
  42,
  -7,
  "key\r\n:1\r\n*0",
  "",
  null,
  "ключ 🔑",
  null,
  [],
  ["0", ["ns::a", null, [5]]],
];

describe("RESP reply parser", () => {
  it("reads several replies from one chunk", () => {
    expect(new ReplyParser().push(STREAM)).toEqual(EXPECTED);
  });

  it("reads the same replies however the stream is split in two, at every byte", () => {
    for (let cut = 0; cut <= STREAM.length; cut++) {
      const parser = new ReplyParser();
      const replies = [...parser.push(STREAM.subarray(0, cut)), ...parser.push(STREAM.subarray(cut))];
      expect(replies, `cut at byte ${cut}`).toEqual(EXPECTED);
    }
  });

  it("reads the same replies fed one byte at a time (a multi-byte character split too)", () => {
    const parser = new ReplyParser();
    const replies: Reply[] = [];
    for (let i = 0; i < STREAM.length; i++) replies.push(...parser.push(STREAM.subarray(i, i + 1)));
    expect(replies).toEqual(EXPECTED);
  });

  it("refuses bytes that are not RESP2", () => {
    for (const garbage of ["HTTP/1.1 200 OK\r\n", ":12x\r\n", "$abc\r\n", "+OK\rX"]) {
      expect(() => new ReplyParser().push(Buffer.from(garbage)), garbage).toThrow(ProtocolError);
    }
  });

  it("refuses a bulk string larger than any record as soon as its length is read, before any of its bytes (issue 19)", () => {
    const parser = new ReplyParser();
    expect(parser.push(Buffer.from("+OK\r\n"))).toEqual(["OK"]);
    expect(() => parser.push(Buffer.from(`$${50 * 1024 * 1024}\r\n`))).toThrow(ReplyTooLargeError);
    expect(() => new ReplyParser().push(Buffer.from(`*1\r\n$${MAX_REPLY_BYTES + 1}\r\n`))).toThrow(
      ReplyTooLargeError,
    );
  });

  it("refuses a line that grows past the limit without ever ending", () => {
    const parser = new ReplyParser();
    parser.push(Buffer.from("+"));
    const filler = Buffer.alloc(64 * 1024, "a");
    expect(() => {
      for (let sent = 0; sent <= MAX_REPLY_BYTES; sent += filler.length) parser.push(filler);
    }).toThrow(ReplyTooLargeError);
  });

  it("reads a value of the largest allowed size sent in 1 KiB pieces, inside an array", () => {
    const value = "é".repeat(MAX_REPLY_BYTES / 2);
    const wire = Buffer.from(`*2\r\n$${Buffer.byteLength(value)}\r\n${value}\r\n:1\r\n+OK\r\n`);
    const parser = new ReplyParser();
    const replies: Reply[] = [];
    for (let at = 0; at < wire.length; at += 1024) replies.push(...parser.push(wire.subarray(at, at + 1024)));
    expect(replies).toEqual([[value, 1], "OK"]);
  });

  it("encodes a command as an array of bulk strings, lengths in bytes", () => {
    expect(encodeCommand(["SET", "ключ", ""])).toBe("*3\r\n$3\r\nSET\r\n$8\r\nключ\r\n$0\r\n\r\n");
  });
});

describe("Keyv's serialization, restated", () => {
  const keyv = new Keyv();
  const values: unknown[] = [
    { v: 1, accessKeyId: "ASIA", secretAccessKey: "s/+=", expiration: 1_700_000_000_000, cachedAt: 1 },
    {
      value: { a: ":colon", b: "::two", c: ":base64:aGk=", d: "plain", e: [":x", null, 1.5, true] },
      expires: 5,
    },
    { value: 'ключ 🔑 \u2028 "quoted" \\ \n', expires: undefined },
    { value: { skipped: undefined, fn: () => 1, nested: { arr: [undefined, () => 1, { deep: ":d" }] } } },
    { value: new Date(1_700_000_000_000) },
    { value: [], expires: null },
    { value: {} },
    { value: 0 },
    { value: -1.25e-7 },
    { value: Number.NaN },
    { value: null },
    { value: ":" },
    { value: Buffer.from("bytes") },
  ];

  it("writes the very bytes @keyv/serialize writes, and reads them back the same", () => {
    for (const value of values) {
      const ours = serializeKeyv(value);
      expect(ours).toBe(keyv.serialize!(value as never));
      expect(deserializeKeyv(ours)).toEqual(keyv.deserialize!(ours));
    }
  });
});
