import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import type { CredentialCache } from "@credcache/core";
import { createTestClock } from "./clock.js";
import { StoreProcess } from "./storeProcess.js";
import type {
  CredentialCacheSuiteOptions,
  ExpectFunction,
  StoreFactory,
  StoreModule,
  SuiteContext,
  TestClock,
} from "./types.js";

/** Longest wait for a store's `close()` during cleanup. */
const CLOSE_TIMEOUT_MS = 5_000;

/**
 * Everything one test owns: its temp dirs, clock, stores and child processes.
 * `dispose()` (run from afterEach) kills, closes and removes all of it.
 */
export class TestFixture implements SuiteContext {
  readonly tempDir: string;
  readonly clock: TestClock;
  readonly expect: ExpectFunction;
  readonly options: CredentialCacheSuiteOptions;
  private readonly factory: StoreFactory;
  private readonly token = randomUUID();
  private readonly dirs: string[];
  private readonly stores: Array<Promise<CredentialCache>> = [];
  private readonly children: StoreProcess[] = [];
  private opened: Promise<CredentialCache> | undefined;
  private location: Promise<string> | undefined;

  private constructor(
    tempDir: string,
    factory: StoreFactory,
    options: CredentialCacheSuiteOptions,
    expect: ExpectFunction,
  ) {
    this.tempDir = tempDir;
    this.dirs = [tempDir];
    this.clock = createTestClock();
    this.factory = factory;
    this.options = options;
    this.expect = expect;
  }

  static async create(
    factory: StoreFactory,
    options: CredentialCacheSuiteOptions,
    expect: ExpectFunction,
  ): Promise<TestFixture> {
    const tempDir = await mkdtemp(path.join(tmpdir(), "credcache-suite-"));
    return new TestFixture(tempDir, factory, options, expect);
  }

  /** This test's store from the factory, built on first use. */
  store(): Promise<CredentialCache> {
    if (!this.opened) {
      const context: SuiteContext = { tempDir: this.tempDir, clock: this.clock };
      this.opened = Promise.resolve().then(() => this.factory(context));
      this.stores.push(this.opened);
    }
    return this.opened;
  }

  /** A key no other test (or other run against the same server) uses. */
  key(label: string): string {
    return `credcache-suite:${label}:${this.token}:${randomUUID().slice(0, 8)}`;
  }

  /** The random part shared by every key of this test, for building unusual keys. */
  get keyToken(): string {
    return this.token;
  }

  /** The directory the parent and its children share in the cross-process group. */
  sharedLocation(): Promise<string> {
    this.location ??= mkdtemp(path.join(tmpdir(), "credcache-suite-shared-")).then((dir) => {
      this.dirs.push(dir);
      return dir;
    });
    return this.location;
  }

  /** A store in this process, built by the cross-process module on the shared location. */
  async moduleStore(): Promise<CredentialCache> {
    const modulePath = this.crossProcessModule();
    const location = await this.sharedLocation();
    const opened = import(pathToFileURL(modulePath).href).then(async (loaded: { default?: unknown }) => {
      if (typeof loaded.default !== "function") {
        throw new TypeError(`${modulePath} must default-export a function ({ location }) => CredentialCache`);
      }
      return (loaded.default as StoreModule)({ location });
    });
    this.stores.push(opened);
    return opened;
  }

  /** A store in a new child `node` process, built by the cross-process module on the shared location. */
  async spawn(): Promise<StoreProcess> {
    const modulePath = this.crossProcessModule();
    const location = await this.sharedLocation();
    const child = await StoreProcess.spawn(modulePath, location);
    this.children.push(child);
    return child;
  }

  /** Kills children, closes stores, removes temp dirs. Reports store close failures. */
  async dispose(): Promise<void> {
    await Promise.all(this.children.map((child) => child.kill()));
    const failures: string[] = [];
    await Promise.all(
      this.stores.map(async (opening) => {
        let store: CredentialCache;
        try {
          store = await opening;
        } catch {
          return; // The test already failed on this.
        }
        const outcome = await settleWithin(
          Promise.resolve().then(() => store.close?.()),
          CLOSE_TIMEOUT_MS,
        );
        if (outcome === "timeout")
          failures.push(`store.close() did not settle within ${CLOSE_TIMEOUT_MS} ms`);
        else if (outcome instanceof Error) failures.push(`store.close() rejected: ${outcome.message}`);
      }),
    );
    await Promise.all(
      this.dirs.map((dir) => rm(dir, { recursive: true, force: true, maxRetries: 3 }).catch(() => {})),
    );
    if (failures.length > 0) throw new Error(failures.join("; "));
  }

  private crossProcessModule(): string {
    const modulePath = this.options.crossProcess?.modulePath;
    if (!modulePath) throw new Error("this check needs options.crossProcess.modulePath");
    return modulePath;
  }
}

async function settleWithin(promise: Promise<unknown>, ms: number): Promise<"ok" | "timeout" | Error> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise.then(
        () => "ok" as const,
        (error: unknown) => (error instanceof Error ? error : new Error(String(error))),
      ),
      new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
