/**
 * RESP2, the Redis wire protocol, as far as `createRedisCache` needs it: commands out as
 * arrays of bulk strings, replies in through a streaming parser. Pure (no I/O), so the
 * parser can be fed any split of a reply in tests.
 * @internal
 */

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
 * Turns the bytes of a connection into replies, however TCP splits them: a reply cut
 * across chunks waits for the rest; a chunk with several replies gives all of them.
 */
export class ReplyParser {
  #pending: Buffer = Buffer.alloc(0);

  /** Adds the next chunk and returns the replies it completed, in order. */
  push(chunk: Buffer): Reply[] {
    const buffer = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    const replies: Reply[] = [];
    let offset = 0;
    for (;;) {
      const parsed = parseReply(buffer, offset);
      if (parsed === undefined) break;
      replies.push(parsed.reply);
      offset = parsed.end;
    }
    // An incomplete reply is parsed again from its start when more arrives: replies here are
    // small, and a bulk string's length lets the parser jump over its bytes.
    this.#pending = buffer.subarray(offset);
    return replies;
  }
}

/** The reply starting at `start`, and where it ends; `undefined` while it is incomplete. */
function parseReply(buffer: Buffer, start: number): { reply: Reply; end: number } | undefined {
  const lineEnd = buffer.indexOf(CR, start);
  if (lineEnd === -1 || lineEnd + 1 >= buffer.length) return undefined;
  if (buffer[lineEnd + 1] !== LF) throw new ProtocolError("the server sent a line not ended by CRLF");
  const line = buffer.toString("utf8", start + 1, lineEnd);
  const next = lineEnd + 2;
  switch (buffer[start]) {
    case 0x2b: // "+" simple string
      return { reply: line, end: next };
    case 0x2d: // "-" error
      return { reply: new ErrorReply(line), end: next };
    case 0x3a: // ":" integer
      return { reply: integer(line), end: next };
    case 0x24: {
      // "$" bulk string: its length, then that many bytes and CRLF
      const length = integer(line);
      if (length < 0) return { reply: null, end: next };
      if (buffer.length < next + length + 2) return undefined;
      return { reply: buffer.toString("utf8", next, next + length), end: next + length + 2 };
    }
    case 0x2a: {
      // "*" array: its length, then that many replies, arrays included
      const count = integer(line);
      if (count < 0) return { reply: null, end: next };
      const items: Reply[] = [];
      let at = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buffer, at);
        if (item === undefined) return undefined;
        items.push(item.reply);
        at = item.end;
      }
      return { reply: items, end: at };
    }
    default:
      throw new ProtocolError(
        `the server sent a reply of unknown type ${JSON.stringify(buffer.toString("latin1", start, start + 1))}`,
      );
  }
}

function integer(text: string): number {
  if (!/^-?\d+$/.test(text)) throw new ProtocolError("the server sent a malformed length or integer");
  return Number(text);
}
