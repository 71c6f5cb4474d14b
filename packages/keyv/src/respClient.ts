import { type NodeAddress, redirectOf, SLOT_COUNT, slotOf, slotTable } from "./clusterSlots.js";
import { ErrorReply, ProtocolError, type Reply } from "./resp.js";
import {
  Connection,
  type RespTimeouts,
  replyError,
  type Target,
  targetAt,
  targetOf,
} from "./respConnection.js";

export type { RespTimeouts } from "./respConnection.js";

/** A reply that is not an error: an error reply rejects the call instead. */
export type Answer = Exclude<Reply, ErrorReply>;

/** MOVED and ASK replies followed for one command before it fails: a slot moves once at a time. */
const MAX_REDIRECTS = 5;
/** First pause before asking a cluster again after a node went away; doubles up to a second. */
const FIRST_RETRY_PAUSE_MS = 50;

/** The key a command names (its slot decides which node of a cluster serves it), if any. */
function keyOf(args: readonly string[]): string | undefined {
  switch (args[0]) {
    case "GET":
    case "SET":
    case "UNLINK":
    case "DEL":
      return args[1];
    case "EVAL":
    case "EVALSHA":
      return Number(args[2]) > 0 ? args[3] : undefined;
    default:
      return undefined;
  }
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A minimal Redis client: RESP2, commands pipelined in order on one connection per node.
 * It opens a connection on the first call to a node and never reconnects on its own: when
 * the connection drops or times out, the calls waiting on it reject, and the next call
 * opens a new one. While no call is waiting, no socket keeps the process alive.
 *
 * Redis Cluster (and a managed cluster endpoint such as ElastiCache Serverless): every
 * command goes to the URL's node until a `MOVED` reply shows the server is a cluster, so a
 * single node costs nothing more than before. From the first `MOVED` on, the client keeps
 * the slot table (`CLUSTER SLOTS`), sends each keyed command to its slot's master, follows
 * `MOVED` (and learns from it) and `ASK` (with `ASKING`), at most 5 redirects per command.
 * When a node of a known cluster goes away (a failover), a keyed command asks the cluster
 * again, with growing pauses, until its replica has taken over or `commandTimeoutMs` has
 * passed. Every node is dialled with the URL's TLS, CA trust, user and password; a
 * certificate is checked against the host dialled, as the cluster announces it.
 *
 * Loads only `node:net` (and `node:tls` for `rediss://`): the whole point is a short
 * start-up for short-lived processes, where `@redis/client` costs ~60 ms to load.
 *
 * Error messages name a server as `host:port`, never the URL or its password.
 * @internal
 */
export class RespClient {
  readonly #seed: Target;
  readonly #timeouts: RespTimeouts;
  /** One connection per node, by `host:port`. */
  readonly #connections = new Map<string, Connection>();
  #seedConnection: Connection | undefined;
  /** The master of each slot, once the server has shown it is a cluster; until then all goes to the seed. */
  #slots: Array<NodeAddress | undefined> | undefined;
  #slotsLoading: Promise<void> | undefined;

  constructor(url: string, timeouts: RespTimeouts) {
    this.#seed = targetOf(url);
    this.#timeouts = timeouts;
  }

  /** Sends one command to the node that serves its key; resolves to its reply, rejects with a `CacheUnavailableError`. */
  send(args: readonly string[]): Promise<Answer> {
    // A single node (or a cluster not yet seen): straight to the seed's connection, with
    // nothing to hash or time; only an error reply (a MOVED among them) takes the full route.
    if (this.#slots === undefined) {
      return this.#connectionTo(this.#seed)
        .send(args)
        .then((reply) => (reply instanceof ErrorReply ? this.#route(args, keyOf(args), reply) : reply));
    }
    return this.#route(args, keyOf(args));
  }

  /** Sends one command to one node as it is (no redirect followed): SCAN on each master. */
  async sendTo(node: NodeAddress, args: readonly string[]): Promise<Answer> {
    const reply = await this.#connectionTo(node).send(args);
    if (reply instanceof ErrorReply) throw replyError(this.#target(node), args, reply);
    return reply;
  }

  /**
   * The masters to list keys on: the URL's node alone, unless the server says it is a
   * cluster (one `CLUSTER SLOTS`, which a single node refuses).
   */
  async masters(): Promise<NodeAddress[]> {
    const seed = { host: this.#seed.host, port: this.#seed.port };
    const reply = await this.#connectionTo(seed).send(["CLUSTER", "SLOTS"]);
    const table = reply instanceof ErrorReply ? undefined : slotTable(reply, this.#seed.host);
    if (table === undefined) return [seed];
    this.#slots = table;
    const unique = new Map<string, NodeAddress>();
    for (const node of table) if (node) unique.set(`${node.host}:${node.port}`, node);
    return [...unique.values()];
  }

  /** Ends every connection (QUIT when it is up, so that sent commands complete). A later call reconnects. */
  async close(): Promise<void> {
    const connections = [...this.#connections.values()];
    this.#connections.clear();
    this.#seedConnection = undefined;
    await Promise.all(connections.map((connection) => connection.close()));
  }

  /** `firstReply`: what the seed already answered to the first try (the single-node fast path). */
  async #route(args: readonly string[], key: string | undefined, firstReply?: ErrorReply): Promise<Answer> {
    const seed = { host: this.#seed.host, port: this.#seed.port };
    // Hashed only once the server has shown it is a cluster: a single node never pays for it.
    let slot: number | undefined;
    const slotNow = () => (slot ??= key === undefined || this.#slots === undefined ? undefined : slotOf(key));
    const ownerOf = () => {
      const known = slotNow();
      return (known === undefined ? undefined : this.#slots?.[known]) ?? seed;
    };
    const deadline = Date.now() + this.#timeouts.commandTimeoutMs;
    let node = ownerOf();
    let asking = false;
    let redirects = 0;
    let retryPause = FIRST_RETRY_PAUSE_MS;
    for (;;) {
      const connection = this.#connectionTo(node);
      let reply: Reply;
      try {
        // ASKING holds for the next command on the connection only: the two go out together.
        if (asking) connection.send(["ASKING"]).catch(() => {});
        reply = firstReply ?? (await connection.send(args));
        firstReply = undefined;
      } catch (error) {
        // In a known cluster a node that went away is being replaced by its replica: ask
        // the others who serves the slot now, until the command's own time is up. A node
        // that answered badly (a planted huge value) would only answer the same again.
        const badAnswer = (error as { cause?: unknown }).cause instanceof ProtocolError;
        if (badAnswer || slotNow() === undefined || Date.now() + retryPause > deadline) throw error;
        await pause(retryPause);
        retryPause = Math.min(retryPause * 2, 1_000);
        await this.#loadSlots(node);
        node = ownerOf();
        asking = false;
        continue;
      }
      if (!(reply instanceof ErrorReply)) return reply;
      const redirect = redirectOf(reply.message, this.#seed.host);
      if (redirect !== undefined && redirects < MAX_REDIRECTS) {
        redirects += 1;
        if (redirect.kind === "MOVED") this.#learn(redirect.slot, redirect.node);
        node = redirect.node;
        asking = redirect.kind === "ASK";
        continue;
      }
      // A slot in the middle of moving, or a cluster electing a new master: brief states.
      if (/^(TRYAGAIN|CLUSTERDOWN) /.test(reply.message) && Date.now() + retryPause <= deadline) {
        await pause(retryPause);
        retryPause = Math.min(retryPause * 2, 1_000);
        if (reply.message.startsWith("CLUSTERDOWN")) await this.#loadSlots(undefined);
        node = ownerOf();
        asking = false;
        continue;
      }
      throw replyError(this.#target(node), args, reply);
    }
  }

  /** A MOVED reply: the slot's new master now, and the whole table (once, in the background) after. */
  #learn(slot: number, node: NodeAddress): void {
    if (this.#slots === undefined) {
      this.#slots = new Array(SLOT_COUNT).fill(undefined);
      void this.#loadSlots(undefined);
    }
    this.#slots[slot] = node;
  }

  /** Reads `CLUSTER SLOTS` from the seed or any known node other than `avoid`; one read at a time. */
  #loadSlots(avoid: NodeAddress | undefined): Promise<void> {
    this.#slotsLoading ??= (async () => {
      const known = new Map<string, NodeAddress>([[`${this.#seed.host}:${this.#seed.port}`, this.#seed]]);
      for (const node of this.#slots ?? []) if (node) known.set(`${node.host}:${node.port}`, node);
      if (avoid) known.delete(`${avoid.host}:${avoid.port}`);
      for (const node of known.values()) {
        try {
          const reply = await this.#connectionTo(node).send(["CLUSTER", "SLOTS"]);
          const table = reply instanceof ErrorReply ? undefined : slotTable(reply, this.#seed.host);
          if (table) {
            this.#slots = table;
            return;
          }
        } catch {
          // That node is away too: ask the next.
        }
      }
    })().finally(() => {
      this.#slotsLoading = undefined;
    });
    return this.#slotsLoading;
  }

  #target(node: NodeAddress): Target {
    return node.host === this.#seed.host && node.port === this.#seed.port
      ? this.#seed
      : targetAt(this.#seed, node.host, node.port);
  }

  #connectionTo(node: NodeAddress): Connection {
    // The seed's connection is the one every single-node call uses: no name to build.
    const seed = this.#seedConnection;
    if (node === this.#seed && seed !== undefined && !seed.failed) return seed;
    const name = `${node.host}:${node.port}`;
    let connection = this.#connections.get(name);
    if (connection === undefined || connection.failed) {
      connection = new Connection(this.#target(node), this.#timeouts);
      this.#connections.set(name, connection);
    }
    if (node === this.#seed) this.#seedConnection = connection;
    return connection;
  }
}
