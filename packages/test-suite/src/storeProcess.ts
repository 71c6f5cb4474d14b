import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { CacheLock, CredentialCache } from "@credcache/core";
import type { ReadyMessage, StoreRequest, StoreResponse, WireError, WireLock } from "./protocol.js";

/** Longest wait for a child to load its store module and say it is ready. */
const READY_TIMEOUT_MS = 20_000;
/** Longest wait for any one answer from a child. */
const REQUEST_TIMEOUT_MS = 15_000;
/** Longest wait for a killed child to be reaped. */
const EXIT_TIMEOUT_MS = 5_000;
const STDERR_TAIL_CHARS = 4_000;

/**
 * Where the runner lives: next to this file in dist, or in ../dist when the suite
 * runs from its TypeScript source (inside vitest). Children need the built file
 * because they run under plain node.
 */
function runnerPath(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.join(here, "child.js"), path.join(here, "..", "dist", "child.js")];
  const found = candidates.find((candidate) => existsSync(candidate));
  if (!found) {
    throw new Error(
      `@credcache/test-suite: the cross-process runner is not built (looked for ${candidates.join(", ")}). ` +
        "Build the package first: cd packages/test-suite && npx tsup",
    );
  }
  return found;
}

function remoteError(error: WireError, pid: number, op: string): Error {
  const made = new Error(`${error.message} (in child process ${pid}, ${op})`);
  made.name = error.name;
  if (error.code !== undefined) (made as Error & { code?: string }).code = error.code;
  return made;
}

type Pending = {
  op: string;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
};

/** Distributes the request union over its members, so each keeps its own fields. */
type RequestBody<R = StoreRequest> = R extends StoreRequest ? Omit<R, "id"> : never;

/**
 * A store that lives in a child `node` process, driven over stdin/stdout. It is a
 * `CredentialCache` itself, so checks treat parent and child stores alike.
 */
export class StoreProcess implements CredentialCache {
  readonly pid: number;
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly pending = new Map<number, Pending>();
  private readonly exit: Promise<void>;
  private serial = 0;
  private stderrTail = "";
  private exitReason: string | undefined;

  private constructor(child: ChildProcessWithoutNullStreams, pid: number, exit: Promise<void>) {
    this.child = child;
    this.pid = pid;
    this.exit = exit;
  }

  /** Spawns a child that builds its store with `module({ location })`. */
  static async spawn(modulePath: string, location: string): Promise<StoreProcess> {
    const child = spawn(process.execPath, [runnerPath(), modulePath, location], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    // A write to a child that was just killed fails with EPIPE; the pending request
    // is rejected by the exit handler instead.
    child.stdin.on("error", () => {});
    let onLine: (line: string) => void = () => {};
    let onExit: (reason: string) => void = () => {};
    let stderr = "";
    const exit = new Promise<void>((resolve) => {
      child.once("exit", (code, signal) => {
        onExit(signal ? `killed by ${signal}` : `exited with code ${code}`);
        resolve();
      });
      child.once("error", (error) => {
        onExit(`could not run: ${error.message}`);
        resolve();
      });
    });
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_TAIL_CHARS);
    });
    createInterface({ input: child.stdout, crlfDelay: Number.POSITIVE_INFINITY }).on("line", (line) =>
      onLine(line),
    );

    const ready = await new Promise<ReadyMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`child process did not become ready within ${READY_TIMEOUT_MS} ms`));
      }, READY_TIMEOUT_MS);
      onLine = (line) => {
        try {
          const message = JSON.parse(line) as ReadyMessage;
          clearTimeout(timer);
          resolve(message);
        } catch {
          // Not ours: the store module printed something. Keep waiting.
        }
      };
      onExit = (reason) => {
        clearTimeout(timer);
        reject(
          new Error(`child process ${reason} before it was ready; stderr: ${stderr.trim() || "(empty)"}`),
        );
      };
    }).catch(async (error: Error) => {
      child.kill("SIGKILL");
      await exit;
      throw error;
    });
    if (!ready.ready) {
      child.kill("SIGKILL");
      await exit;
      throw remoteError(ready.error, child.pid ?? -1, `loading ${modulePath}`);
    }

    const store = new StoreProcess(child, ready.pid, exit);
    store.stderrTail = stderr;
    child.stderr.on("data", (chunk: string) => {
      store.stderrTail = (store.stderrTail + chunk).slice(-STDERR_TAIL_CHARS);
    });
    onLine = (line) => store.receive(line);
    onExit = (reason) => store.exited(reason);
    return store;
  }

  /** True once the process has exited. */
  get isDead(): boolean {
    return this.exitReason !== undefined;
  }

  get(key: string): Promise<unknown> {
    return this.request({ op: "get", key });
  }

  async set(key: string, value: unknown, ttlSeconds?: number): Promise<void> {
    await this.request({ op: "set", key, value, ...(ttlSeconds !== undefined && { ttlSeconds }) });
  }

  async remove(key: string): Promise<void> {
    await this.request({ op: "remove", key });
  }

  async acquireLock(key: string, opts: { ttlMs: number }): Promise<CacheLock | undefined> {
    const wire = (await this.request({ op: "acquireLock", key, ttlMs: opts.ttlMs })) as WireLock | undefined;
    if (!wire) return undefined;
    return {
      release: async () => {
        await this.request({ op: "release", lock: wire.lock });
      },
      ...(wire.takenOver !== undefined && { takenOver: wire.takenOver }),
    };
  }

  /** Asks the child to close its store and exit; kills it if it does not. */
  async close(): Promise<void> {
    if (this.isDead) return;
    await this.request({ op: "close" }).catch(() => {});
    await this.waitForExit();
  }

  /** `kill -9`: the child gets no chance to release anything. Resolves once it is gone. */
  async kill(): Promise<void> {
    if (!this.isDead) this.child.kill("SIGKILL");
    await this.waitForExit();
  }

  private async waitForExit(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = await Promise.race([
      this.exit.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), EXIT_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    if (gaveUp) {
      this.child.kill("SIGKILL");
      await Promise.race([this.exit, new Promise((resolve) => setTimeout(resolve, EXIT_TIMEOUT_MS))]);
    }
  }

  private request(body: RequestBody): Promise<unknown> {
    if (this.exitReason !== undefined) {
      return Promise.reject(new Error(`child process ${this.pid} ${this.exitReason}; cannot ${body.op}`));
    }
    this.serial += 1;
    const id = this.serial;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new Error(`child process ${this.pid} did not answer ${body.op} within ${REQUEST_TIMEOUT_MS} ms`),
        );
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, { op: body.op, resolve, reject, timer });
      this.child.stdin.write(`${JSON.stringify({ ...body, id })}\n`);
    });
  }

  private receive(line: string): void {
    let message: StoreResponse;
    try {
      message = JSON.parse(line) as StoreResponse;
    } catch {
      return; // The store module printed something of its own.
    }
    const waiting = this.pending.get(message.id);
    if (!waiting) return;
    this.pending.delete(message.id);
    clearTimeout(waiting.timer);
    if (message.ok) waiting.resolve(message.value);
    else waiting.reject(remoteError(message.error, this.pid, waiting.op));
  }

  private exited(reason: string): void {
    this.exitReason = reason;
    const tail = this.stderrTail.trim();
    for (const [id, waiting] of this.pending) {
      this.pending.delete(id);
      clearTimeout(waiting.timer);
      waiting.reject(
        new Error(
          `child process ${this.pid} ${reason} during ${waiting.op}${tail ? `; stderr: ${tail}` : ""}`,
        ),
      );
    }
  }
}
