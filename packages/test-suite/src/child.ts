/**
 * The cross-process runner: `node child.js <modulePath> <location>`.
 *
 * Loads the store module, builds a store with `{ location }`, prints a ready line,
 * then executes the JSON-line requests it reads on stdin (see protocol.ts). It exits
 * when stdin closes, so a dying parent takes its children with it. Depends on
 * nothing but node itself, so it runs wherever the store module does.
 */
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import type { CacheLock, CredentialCache } from "@credcache/core";
import {
  type ReadyMessage,
  type StoreRequest,
  type StoreResponse,
  toWireError,
  type WireLock,
} from "./protocol.js";

function send(message: ReadyMessage | StoreResponse): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

async function openStore(modulePath: string, location: string): Promise<CredentialCache> {
  const loaded = (await import(pathToFileURL(modulePath).href)) as { default?: unknown };
  const create = loaded.default;
  if (typeof create !== "function") {
    throw new TypeError(
      `${modulePath} must default-export a function ({ location }) => CredentialCache, got ${typeof create}`,
    );
  }
  const store = (await create({ location })) as CredentialCache | undefined;
  if (!store || typeof store.get !== "function") {
    throw new TypeError(`${modulePath}'s default export did not return a CredentialCache`);
  }
  return store;
}

async function main(): Promise<void> {
  const [modulePath, location] = process.argv.slice(2);
  if (!modulePath || !location) {
    send({
      ready: false,
      error: { name: "UsageError", message: "usage: node child.js <modulePath> <location>" },
    });
    process.exit(2);
  }
  let store: CredentialCache;
  try {
    store = await openStore(modulePath, location);
  } catch (error) {
    send({ ready: false, error: toWireError(error) });
    process.exit(1);
  }

  const locks = new Map<string, CacheLock>();
  let lockSerial = 0;
  let closing = false;

  const shutdown = async (): Promise<never> => {
    if (!closing) {
      closing = true;
      try {
        await store.close?.();
      } catch {
        // Exiting anyway; the parent reports close failures of its own stores.
      }
    }
    process.exit(0);
  };

  async function execute(request: StoreRequest): Promise<unknown> {
    switch (request.op) {
      case "get":
        return store.get(request.key);
      case "set":
        return store.set(request.key, request.value, request.ttlSeconds);
      case "remove":
        return store.remove(request.key);
      case "acquireLock": {
        if (typeof store.acquireLock !== "function") throw new TypeError("the store has no acquireLock");
        const lock = await store.acquireLock(request.key, { ttlMs: request.ttlMs });
        if (!lock) return undefined;
        lockSerial += 1;
        const name = `L${lockSerial}`;
        locks.set(name, lock);
        const wire: WireLock = {
          lock: name,
          ...(lock.takenOver !== undefined && { takenOver: lock.takenOver }),
        };
        return wire;
      }
      case "release": {
        const lock = locks.get(request.lock);
        if (!lock) throw new RangeError(`no lock handle named ${request.lock}`);
        // The handle stays known: releasing twice is part of what the suite checks.
        return lock.release();
      }
      case "close":
        setImmediate(() => void shutdown());
        return undefined;
      default:
        throw new RangeError(`unknown op ${(request as { op?: unknown }).op}`);
    }
  }

  async function handle(line: string): Promise<void> {
    let request: StoreRequest;
    try {
      request = JSON.parse(line) as StoreRequest;
    } catch {
      send({ id: -1, ok: false, error: { name: "ProtocolError", message: "a request line is not JSON" } });
      return;
    }
    try {
      const value = await execute(request);
      send(value === undefined ? { id: request.id, ok: true } : { id: request.id, ok: true, value });
    } catch (error) {
      send({ id: request.id, ok: false, error: toWireError(error) });
    }
  }

  const lines = createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY });
  lines.on("line", (line) => {
    if (line.trim() !== "") void handle(line);
  });
  lines.on("close", () => void shutdown());
  send({ ready: true, pid: process.pid });
}

void main();
