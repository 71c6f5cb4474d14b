import { connect as netConnect, type Socket } from "node:net";
import { CacheUnavailableError } from "@credcache/core";
import {
  ErrorReply,
  encodeCommand,
  ProtocolError,
  type Reply,
  ReplyParser,
  ReplyTooLargeError,
} from "./resp.js";
/** Where and how to connect, read from a `redis://` or `rediss://` URL. Holds the password: never expose it. */
export interface Target {
  host: string;
  port: number;
  tls: boolean;
  /** `host:port`, for messages: the URL without its user name and password. */
  where: string;
  /** Matches the password in any spelling (decoded, percent-encoded in either case, or a mix), to scrub from error text. */
  password: RegExp | undefined;
  /** `AUTH [user] password` and `SELECT db`, sent first on every connection. */
  handshake: string[][];
  database: string | undefined;
}

/** Reads a URL that `createRedisCache` has already checked. */
export function targetOf(url: string): Target {
  const parsed = new URL(url);
  const tls = parsed.protocol === "rediss:";
  const host = parsed.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = parsed.port === "" ? 6379 : Number(parsed.port);
  const username = decodeURIComponent(parsed.username);
  const password = decodeURIComponent(parsed.password);
  const database = /^\/(\d+)$/.exec(parsed.pathname)?.[1];
  const handshake: string[][] = [];
  // As node-redis does: a user name or password means AUTH, with "" for a missing password.
  if (username !== "" || password !== "") {
    handshake.push(username === "" ? ["AUTH", password] : ["AUTH", username, password]);
  }
  if (database !== undefined && Number(database) !== 0) handshake.push(["SELECT", database]);
  const where = `${host.includes(":") ? `[${host}]` : host}:${port}`;
  return { host, port, tls, where, password: spellings(password), handshake, database };
}

/**
 * A pattern for `password` however it is written: each character as itself or as the
 * percent-escapes of its UTF-8 bytes (either case), since Redis may echo what it was sent
 * and a proxy what the URL said.
 */
function spellings(password: string): RegExp | undefined {
  if (password === "") return undefined;
  const characters = [...password].map((character) => {
    const literal = character.replace(/[\\^$.*+?()[\]{}|/-]/g, "\\$&");
    const escaped = [...Buffer.from(character)]
      .map((byte) => `%${byte.toString(16).padStart(2, "0")}`)
      .join("");
    return `(?:${literal}|${escaped})`;
  });
  return new RegExp(characters.join(""), "gi");
}

/** The same credentials, TLS and database on another node (of a cluster). */
export function targetAt(seed: Target, host: string, port: number): Target {
  return { ...seed, host, port, where: `${host.includes(":") ? `[${host}]` : host}:${port}` };
}

/** Timeouts of a connection, in milliseconds. */
export interface RespTimeouts {
  /** From opening the socket to the end of the handshake. */
  connectTimeoutMs: number;
  /** From sending a command to its reply. */
  commandTimeoutMs: number;
}

interface Pending {
  command: readonly string[];
  resolve(reply: Reply): void;
  reject(error: Error): void;
  /** The command timeout; none for the handshake, which the connect timeout covers. */
  timer?: NodeJS.Timeout;
  done: boolean;
}

/** An error reply as a `CacheUnavailableError`: what Redis said, without anything it quoted or the password. */
export function replyError(
  target: Target,
  args: readonly string[],
  reply: ErrorReply,
): CacheUnavailableError {
  // Redis quotes arguments back in single quotes ("unknown command 'x', with args beginning
  // with: 'y'"), and an argument can be a record with a secret in it: nothing quoted is passed on.
  let text = reply.message.replace(/'[^']*'?/g, "'...'");
  // Scrubbed before it is cut, so a password cut in two cannot slip through.
  if (target.password) text = text.replace(target.password, "***");
  text = text.slice(0, 200);
  return new CacheUnavailableError(`Redis at ${target.where} answered ${args[0]} with an error: ${text}`);
}

/** One socket and its queue of calls. Fails once, for good: the client then opens another. */
export class Connection {
  readonly #target: Target;
  readonly #timeouts: RespTimeouts;
  readonly #parser = new ReplyParser();
  /** Written to the socket, waiting for replies, oldest first: RESP answers in order. */
  readonly #sent: Pending[] = [];
  /** Waiting for the handshake to succeed: a SELECT that failed must not let a write go to database 0. */
  #held: Array<Pending> | undefined = [];
  #socket: Socket | undefined;
  #connectTimer: NodeJS.Timeout;
  #up = false;
  #failure: Error | undefined;

  constructor(target: Target, timeouts: RespTimeouts) {
    this.#target = target;
    this.#timeouts = timeouts;
    this.#connectTimer = setTimeout(
      () =>
        this.#afterIo(
          () => !this.#up,
          `Redis at ${target.where} did not accept the connection within ${timeouts.connectTimeoutMs} ms`,
        ),
      timeouts.connectTimeoutMs,
    );
    if (target.tls) {
      // Only rediss:// pays for loading TLS.
      import("node:tls").then(
        (tls) => this.#attach(tls.connect({ host: target.host, port: target.port })),
        (error: unknown) =>
          this.#fail(new CacheUnavailableError("node:tls could not be loaded", { cause: error })),
      );
    } else {
      this.#attach(netConnect({ host: target.host, port: target.port }));
    }
  }

  get failed(): boolean {
    return this.#failure !== undefined;
  }

  /** Sends one command; resolves to its reply, an error reply included; rejects when the connection fails. */
  send(args: readonly string[]): Promise<Reply> {
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise<Reply>((resolve, reject) => {
      const pending: Pending = { command: args, resolve, reject, done: false };
      pending.timer = setTimeout(
        () =>
          this.#afterIo(
            () => !pending.done,
            // A reply cannot be skipped in RESP: the only way past a missing one is a new connection.
            `Redis at ${this.#target.where} did not answer ${args[0]} within ${this.#timeouts.commandTimeoutMs} ms`,
          ),
        this.#timeouts.commandTimeoutMs,
      );
      if (this.#held) this.#held.push(pending);
      else this.#write(pending);
      this.#updateRef();
    });
  }

  async close(): Promise<void> {
    if (this.#failure) return;
    if (this.#up) {
      try {
        await this.send(["QUIT"]);
      } catch {
        // Closing anyway.
      }
    }
    this.#fail(new CacheUnavailableError(`the connection to Redis at ${this.#target.where} was closed`));
  }

  #attach(socket: Socket): void {
    this.#socket = socket;
    if (this.#failure) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    const { where, handshake } = this.#target;
    socket.on(this.#target.tls ? "secureConnect" : "connect", () => {
      if (handshake.length === 0) this.#ready();
    });
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("error", (error: NodeJS.ErrnoException) => {
      const reason = error.code ?? "socket error";
      this.#fail(
        new CacheUnavailableError(
          this.#up
            ? `the connection to Redis at ${where} failed (${reason})`
            : `cannot reach Redis at ${where} (${reason})`,
        ),
      );
    });
    socket.on("close", () =>
      this.#fail(new CacheUnavailableError(`Redis at ${where} closed the connection before answering`)),
    );
    if (handshake.length === 0) {
      // Nothing to wait for: commands go out now, and the socket sends them once connected.
      this.#flushHeld();
      return;
    }
    handshake.forEach((command, index) => {
      const pending: Pending = {
        command,
        done: false,
        resolve: (reply) => {
          if (reply instanceof ErrorReply) this.#fail(this.#handshakeError(command, reply));
          else if (index === handshake.length - 1) this.#ready();
        },
        reject: () => {},
      };
      this.#write(pending);
    });
  }

  #ready(): void {
    this.#up = true;
    clearTimeout(this.#connectTimer);
    this.#flushHeld();
  }

  #flushHeld(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const pending of held) this.#write(pending);
  }

  #write(pending: Pending): void {
    this.#sent.push(pending);
    this.#socket?.write(encodeCommand(pending.command));
  }

  #onData(chunk: Buffer): void {
    let replies: Reply[];
    try {
      replies = this.#parser.push(chunk);
    } catch (error) {
      const { where } = this.#target;
      this.#fail(
        new CacheUnavailableError(
          error instanceof ReplyTooLargeError
            ? // A planted value: refused unread, and the connection with it (its bytes are still coming).
              `Redis at ${where} sent a reply too large to be a record: ${error.message}; the connection was closed`
            : `Redis at ${where} broke the protocol: ${error instanceof ProtocolError ? error.message : "unreadable reply"}`,
          // Kept as the cause so the client can tell a bad answer (never asked again) from a node that went away.
          { cause: error },
        ),
      );
      return;
    }
    for (const reply of replies) {
      if (this.#failure) return; // a failed handshake: the rest was already rejected
      const pending = this.#sent.shift();
      if (pending === undefined) {
        this.#fail(new CacheUnavailableError(`Redis at ${this.#target.where} sent a reply nobody asked for`));
        return;
      }
      pending.done = true;
      clearTimeout(pending.timer);
      pending.resolve(reply);
    }
    this.#updateRef();
  }

  /**
   * Fails the connection with `message` if `stillWaiting()` after pending I/O has been read.
   * A timer can fire in the same loop turn in which the reply arrived (timers run before
   * I/O), on a starved host especially; setImmediate runs after the I/O phase.
   */
  #afterIo(stillWaiting: () => boolean, message: string): void {
    setImmediate(() => {
      if (stillWaiting()) this.#fail(new CacheUnavailableError(message));
    });
  }

  /** Closes the socket and rejects every call still waiting. */
  #fail(error: Error): void {
    if (this.#failure) return;
    this.#failure = error;
    clearTimeout(this.#connectTimer);
    this.#socket?.destroy();
    for (const pending of [...this.#sent.splice(0), ...(this.#held?.splice(0) ?? [])]) {
      pending.done = true;
      clearTimeout(pending.timer);
      pending.reject(error);
    }
  }

  /** The socket keeps the process alive only while a call waits on it. */
  #updateRef(): void {
    if (this.#sent.length > 0 || (this.#held?.length ?? 0) > 0) this.#socket?.ref();
    else this.#socket?.unref();
  }

  #handshakeError(command: readonly string[], reply: ErrorReply): CacheUnavailableError {
    // Only the error's code (WRONGPASS, NOAUTH, ERR): nothing Redis says about AUTH is passed on.
    const code = /^[A-Z]+/.exec(reply.message)?.[0] ?? "ERR";
    const what =
      command[0] === "AUTH"
        ? "the user name and password of the URL"
        : `to select database ${this.#target.database}`;
    return new CacheUnavailableError(`Redis at ${this.#target.where} refused ${what} (${code})`);
  }
}
