/**
 * RESP2, the Redis wire protocol, as far as `createRedisCache` needs it: commands out as
 * arrays of bulk strings, replies in through a streaming parser. Pure (no I/O), so the
 * parser can be fed any split of a reply in tests.
 * @internal
 */

import { MAX_RECORD_CHARS } from "@credcache/core";

/** An error reply (`-ERR ...`, `-WRONGPASS ...`): Redis's answer, not a failure of the connection. */
export class ErrorReply {
  constructor(readonly message: string) {}
}

/** A parsed reply. Bulk strings are decoded as UTF-8; a null bulk string or array is `null`. */
export type Reply = string | number | null | ErrorReply | Reply[];

/** The server sent bytes that are not RESP2: the connection cannot be trusted any more. */
export class ProtocolError extends Error {}

/** One command as RESP2 puts it on the wire: `*<n>\r\n` then `$<bytes>\r\n<arg>\r\n` per argument. */
export function encodeCommand(args: readonly string[]): string {
  let out = `*${args.length}\r\n`;
  for (const arg of args) out += `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`;
  return out;
}

const CR = 0x0d;
const LF = 0x0a;

/**
 * The largest bulk string or line the parser accepts: a record can be at most core's
 * `MAX_RECORD_CHARS` characters, each at most 3 bytes in UTF-8 (a JSON text escapes the
 * rest), plus Keyv's envelope. A larger reply cannot be a record, only a planted value.
 */
export const MAX_REPLY_BYTES = 3 * MAX_RECORD_CHARS + 1024;

/** The server announced a reply larger than any record: refused before its bytes are read. */
export class ReplyTooLargeError extends ProtocolError {}

/** An array being filled: its items so far, and how many it announced. */
interface OpenArray {
  items: Reply[];
  count: number;
}

/**
 * Turns the bytes of a connection into replies, however TCP splits them: a reply cut
 * across chunks waits for the rest; a chunk with several replies gives all of them.
 * Each byte is looked at once (a partial reply is kept as its parts, joined once when
 * complete), and a bulk string or line longer than `maxBytes` is refused as soon as its
 * length is known, so a planted 50 MB value costs neither memory nor CPU.
 * After a `ProtocolError` the parser (and its connection) is unusable.
 */
export class ReplyParser {
  readonly #maxBytes: number;
  /** A line (`+`, `-`, `:`, `$<n>`, `*<n>`) cut across chunks: its parts so far. */
  #line: Buffer[] = [];
  #lineBytes = 0;
  /** A bulk string being read: its announced length, and its parts so far (CRLF included). */
  #bulk: { length: number; parts: Buffer[]; bytes: number } | undefined;
  /** The arrays the next reply goes into, outermost first. */
  readonly #open: OpenArray[] = [];

  constructor(maxBytes = MAX_REPLY_BYTES) {
    this.#maxBytes = maxBytes;
  }

  /** Adds the next chunk and returns the replies it completed, in order. */
  push(chunk: Buffer): Reply[] {
    const replies: Reply[] = [];
    let at = 0;
    while (at < chunk.length) {
      const bulk = this.#bulk;
      if (bulk !== undefined) {
        const take = Math.min(bulk.length + 2 - bulk.bytes, chunk.length - at);
        bulk.parts.push(chunk.subarray(at, at + take));
        bulk.bytes += take;
        at += take;
        if (bulk.bytes < bulk.length + 2) break;
        this.#bulk = undefined;
        const data = Buffer.concat(bulk.parts, bulk.bytes);
        if (data[bulk.length] !== CR || data[bulk.length + 1] !== LF) {
          throw new ProtocolError("the server sent a bulk string not ended by CRLF");
        }
        this.#complete(data.toString("utf8", 0, bulk.length), replies);
        continue;
      }
      // The common case, a whole line and its bulk string in this chunk: read them in place.
      if (this.#lineBytes === 0 && chunk[at] === 0x24) {
        const whole = this.#wholeBulkAt(chunk, at);
        if (whole !== undefined) {
          at = whole.end;
          this.#complete(whole.reply, replies);
          continue;
        }
      }
      const lf = chunk.indexOf(LF, at);
      const end = lf === -1 ? chunk.length : lf + 1;
      const cr = chunk.indexOf(CR, at);
      if (lf === -1 && cr !== -1 && cr < chunk.length - 1) {
        throw new ProtocolError("the server sent a line not ended by CRLF");
      }
      this.#lineBytes += end - at;
      if (this.#lineBytes > this.#maxBytes) {
        throw new ReplyTooLargeError(`the server sent a line longer than ${this.#maxBytes} bytes`);
      }
      this.#line.push(chunk.subarray(at, end));
      at = end;
      if (lf === -1) break;
      const line = Buffer.concat(this.#line, this.#lineBytes);
      this.#line = [];
      this.#lineBytes = 0;
      const whole = this.#readLine(line);
      if (whole !== undefined) this.#complete(whole.reply, replies);
    }
    return replies;
  }

  /** `$<n>\r\n<n bytes>\r\n` wholly inside `chunk` from `at`: the string and where it ends; else undefined (the general path reads it). */
  #wholeBulkAt(chunk: Buffer, at: number): { reply: Reply; end: number } | undefined {
    const lf = chunk.indexOf(LF, at);
    if (lf === -1 || chunk[lf - 1] !== CR) return undefined;
    const text = chunk.toString("latin1", at + 1, lf - 1);
    if (!/^\d+$/.test(text)) return undefined;
    const length = Number(text);
    const start = lf + 1;
    const end = start + length + 2;
    if (length > this.#maxBytes || end > chunk.length) return undefined;
    if (chunk[end - 2] !== CR || chunk[end - 1] !== LF) {
      throw new ProtocolError("the server sent a bulk string not ended by CRLF");
    }
    return { reply: chunk.toString("utf8", start, start + length), end };
  }

  /** A whole line, CRLF included: a whole reply, or (`undefined`) the header of a bulk string or array to come. */
  #readLine(line: Buffer): { reply: Reply } | undefined {
    const cr = line.indexOf(CR);
    if (cr !== line.length - 2) throw new ProtocolError("the server sent a line not ended by CRLF");
    const text = line.toString("utf8", 1, cr);
    switch (line[0]) {
      case 0x2b: // "+" simple string
        return { reply: text };
      case 0x2d: // "-" error
        return { reply: new ErrorReply(text) };
      case 0x3a: // ":" integer
        return { reply: integer(text) };
      case 0x24: {
        // "$" bulk string: its length, then that many bytes and CRLF
        const length = integer(text);
        if (length < 0) return { reply: null };
        if (length > this.#maxBytes) {
          throw new ReplyTooLargeError(
            `the server announced a value of ${length} bytes, larger than any record (${this.#maxBytes})`,
          );
        }
        this.#bulk = { length, parts: [], bytes: 0 };
        return undefined;
      }
      case 0x2a: {
        // "*" array: its length, then that many replies, arrays included
        const count = integer(text);
        if (count < 0) return { reply: null };
        if (count === 0) return { reply: [] };
        this.#open.push({ items: [], count });
        return undefined;
      }
      default:
        throw new ProtocolError(
          `the server sent a reply of unknown type ${JSON.stringify(line.toString("latin1", 0, 1))}`,
        );
    }
  }

  /** A finished reply goes into the innermost open array, closing every array it fills. */
  #complete(reply: Reply, replies: Reply[]): void {
    let value = reply;
    for (;;) {
      const array = this.#open.at(-1);
      if (array === undefined) {
        replies.push(value);
        return;
      }
      array.items.push(value);
      if (array.items.length < array.count) return;
      this.#open.pop();
      value = array.items;
    }
  }
}

function integer(text: string): number {
  if (!/^-?\d+$/.test(text)) throw new ProtocolError("the server sent a malformed length or integer");
  return Number(text);
}
