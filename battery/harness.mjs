// The battery's shared harness: checks and their tables, temp dirs, child processes with
// deadlines, and the capture of every text a group saw (for run.mjs's secret scan).
//
// A group is one script in battery/groups. It calls startGroup(), runs checks, and calls
// finish(), which prints the group's Markdown table, writes results-<group>.json into the
// output dir that run.mjs passes as BATTERY_OUT, kills the group's children and removes its
// temp dirs. Groups also run alone: `node battery/groups/clock.mjs`.

import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  appendFileSync,
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, isAbsolute, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { inspect } from "node:util";
import { reachableBundleSync } from "../test/support/bundle.mjs";
import { setting } from "./settings.mjs";

export const BATTERY_DIR = dirname(fileURLToPath(import.meta.url));
export const REPO_DIR = dirname(BATTERY_DIR);
export const CHILDREN_DIR = join(BATTERY_DIR, "children");
/** The unprivileged uid/gid that "another local user" and non-root children run as. */
export const NOBODY = 65534;
/** Protocol lines between a group and its children: `@@{json}` on the child's stdout. */
export const MESSAGE_PREFIX = "@@";

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
export const sha = (text) => createHash("sha256").update(String(text)).digest("hex");

/** Thrown by expect(): a failed trial, with a message for the report. */
export class CheckFailure extends Error {}

export function expect(condition, message) {
  if (!condition) throw new CheckFailure(typeof message === "function" ? message() : message);
}

/** Waits until `predicate()` is truthy, polling; throws after `ms` with `what` in the message. */
export async function waitUntil(predicate, ms, what, pollMs = 10) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() >= deadline) throw new CheckFailure(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(pollMs);
  }
}

/** Races `promise` against a deadline. */
export async function within(promise, ms, what) {
  let timer;
  try {
    return await Promise.race([
      promise,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new CheckFailure(`${what} did not finish within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A Markdown table; `rows` are arrays of cells. */
export function markdownTable(header, rows) {
  const cell = (value) =>
    String(value ?? "")
      .replace(/\|/g, "\\|")
      .replace(/\n/g, " ");
  const lines = [`| ${header.map(cell).join(" | ")} |`, `| ${header.map(() => "---").join(" | ")} |`];
  for (const row of rows) lines.push(`| ${row.map(cell).join(" | ")} |`);
  return lines.join("\n");
}

export const RESULT_HEADER = ["check", "attempts", "failures", "data lost", "result", "note"];

export function resultRow(r) {
  return [r.check, r.attempts, r.failures, r.dataLost, r.passed ? "pass" : "FAIL", r.note];
}

/** A clock that tests move by hand. */
export function manualClock(start = Date.now()) {
  return {
    t: start,
    now() {
      return this.t;
    },
    advance(ms) {
      this.t += ms;
      return this.t;
    },
  };
}

/**
 * A minimal IMDSv2 client (token PUT, role GET, credentials GET): the credential source for
 * the in-process groups that inject a clock. The SDK's own fromInstanceMetadata adds its
 * static stability, which compares Expiration with the real Date.now() and would hide what
 * fromCache does; child-process groups use the real SDK provider.
 */
export function imdsSource(url, { timeoutMs = 1000 } = {}) {
  let calls = 0;
  const source = async () => {
    calls += 1;
    const signal = AbortSignal.timeout(timeoutMs);
    const tokenResponse = await fetch(`${url}/latest/api/token`, {
      method: "PUT",
      headers: { "x-aws-ec2-metadata-token-ttl-seconds": "21600" },
      signal,
    });
    if (!tokenResponse.ok) throw new Error(`IMDS token request failed with HTTP ${tokenResponse.status}`);
    const token = await tokenResponse.text();
    const headers = { "x-aws-ec2-metadata-token": token };
    const base = `${url}/latest/meta-data/iam/security-credentials/`;
    const roleResponse = await fetch(base, { headers, signal });
    if (!roleResponse.ok) throw new Error(`IMDS role request failed with HTTP ${roleResponse.status}`);
    const role = (await roleResponse.text()).trim();
    const response = await fetch(base + role, { headers, signal });
    if (!response.ok) throw new Error(`IMDS credentials request failed with HTTP ${response.status}`);
    let document;
    try {
      document = JSON.parse(await response.text());
    } catch {
      throw new Error("IMDS returned a credentials document that is not JSON");
    }
    return {
      accessKeyId: document.AccessKeyId,
      secretAccessKey: document.SecretAccessKey,
      sessionToken: document.Token,
      expiration: new Date(document.Expiration),
    };
  };
  source.calls = () => calls;
  return source;
}

/** Random credentials shaped like STS ones, for fake sources and planted records. */
export function fakeCredentials(label = "F") {
  const upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  const bytes = randomBytes(16);
  let suffix = label
    .toUpperCase()
    .replace(/[^A-Z0-9]/g, "")
    .slice(0, 6);
  for (const byte of bytes) suffix += upper[byte % upper.length];
  return {
    accessKeyId: `ASIA${suffix.slice(0, 16)}`,
    secretAccessKey: `${randomBytes(30).toString("base64").slice(0, 38)}aZ9`.slice(0, 40),
    sessionToken: randomBytes(300).toString("base64"),
  };
}

// ---- the group ----

let current;

/**
 * Starts a group. Returns the API every group script uses. Installs exit handlers that
 * kill the group's children, so an exception or a signal leaves no orphans.
 */
export function startGroup(name) {
  if (current) throw new Error("startGroup called twice");
  const started = Date.now();
  let out = setting("BATTERY_OUT");
  if (!out) {
    out = mkdtempSync(join(tmpdir(), "credcache-battery-"));
    console.log(`(standalone run: captures in ${out}; run battery/run.mjs for the secret scan)`);
  }
  mkdirSync(out, { recursive: true });
  const runId = setting("BATTERY_RUN_ID") ?? randomBytes(6).toString("hex");
  process.env.BATTERY_RUN_ID = runId;
  const deadline = Number(setting("BATTERY_DEADLINE")) || Date.now() + 300_000;
  const results = [];
  const children = new Set();
  const tempDirs = [];
  const seenBuffer = [];
  const seenFile = join(out, `seen-${name}.txt`);
  const secretsFile = join(out, `secrets-${name}.txt`);
  let childCount = 0;
  let finished = false;

  const flushSeen = () => {
    if (seenBuffer.length === 0) return;
    appendFileSync(seenFile, `${seenBuffer.join("\n")}\n`);
    seenBuffer.length = 0;
  };

  const killChildren = () => {
    for (const child of children) {
      try {
        process.kill(child.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
  };
  process.on("exit", () => {
    killChildren();
    try {
      flushSeen();
    } catch {}
  });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.on(signal, () => {
      killChildren();
      process.exit(128 + 15);
    });
  }
  // A watchdog a little before run.mjs's own deadline, so the table still gets written.
  const watchdog = setTimeout(
    () => {
      console.log(`${name}: group deadline reached; stopping`);
      results.push({
        check: "group finished before its deadline",
        attempts: 1,
        failures: 1,
        dataLost: 0,
        passed: false,
        note: "the group ran out of time",
        details: [],
        ms: Date.now() - started,
      });
      g.finish();
    },
    Math.max(1000, deadline - Date.now() - 3000),
  );
  watchdog.unref();

  const g = {
    name,
    out,
    runId,
    deadline,
    results,

    /** Records any text this group saw (an event, a log line, an inspect, an error) for the scan. */
    seen(...texts) {
      for (const text of texts) {
        if (text === undefined) continue;
        seenBuffer.push(typeof text === "string" ? text : inspect(text, { depth: 6 }));
      }
      if (seenBuffer.length > 2000) flushSeen();
    },

    /** Records an error the way it could reach a user: message, stack, inspect (with causes). */
    seenError(error) {
      if (error instanceof Error) g.seen(error.message, error.stack, inspect(error, { depth: 6 }));
      else g.seen(String(error));
    },

    /** Registers secrets that must never appear in any output. */
    secrets(list) {
      const usable = [...list].filter((s) => typeof s === "string" && s.length >= 16);
      if (usable.length > 0) appendFileSync(secretsFile, `${usable.join("\n")}\n`);
    },

    /** A logger and an onEvent for fromCache that record everything they get. */
    observe() {
      const events = [];
      const logs = [];
      const log =
        (level) =>
        (...args) => {
          const line = args.map((a) => (typeof a === "string" ? a : inspect(a))).join(" ");
          logs.push({ level, line });
          g.seen(`[${level}] ${line}`);
        };
      return {
        events,
        logs,
        logger: { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") },
        onEvent(event) {
          events.push(event);
          g.seen(JSON.stringify(event), inspect(event, { depth: 6 }));
        },
      };
    },

    /** A temp dir (removed at finish). `owner` chowns it; `mode` chmods it. */
    tmp(prefix = "t", { owner, mode } = {}) {
      const root = join(tmpdir(), `credcache-battery-${runId}`);
      mkdirSync(root, { recursive: true, mode: 0o755 });
      chmodSync(root, 0o755);
      if (!tempDirs.includes(root)) tempDirs.push(root);
      const dir = mkdtempSync(join(root, `${name}-${prefix}-`));
      if (owner !== undefined) chownSync(dir, owner, owner);
      chmodSync(dir, mode ?? 0o755);
      return dir;
    },

    /**
     * Spawns `node <script> ...args` with a deadline. Its stdout and stderr go to a log file in
     * the output dir (scanned for secrets); `@@{json}` lines on stdout are protocol messages.
     */
    spawn(
      script,
      { args = [], env = {}, uid, gid, umask, cwd, label, timeoutMs, command, nodeArgs = [] } = {},
    ) {
      childCount += 1;
      const tag = `${label ?? basename(script).replace(/\.mjs$/, "")}-${childCount}`;
      const logFile = join(out, `child-${name}-${tag}.log`);
      const childDeadline = Math.min(deadline - 2000, Date.now() + (timeoutMs ?? 120_000));
      const file = command || isAbsolute(script) ? script : join(CHILDREN_DIR, script);
      // A child of another user cannot reach a checkout under a private directory: it runs a bundle.
      const path =
        uid !== undefined && uid !== process.getuid?.() && !command ? reachableBundleSync(file) : file;
      // `command: true` runs `script` as an executable (e.g. redis-server) instead of a node script.
      const proc = spawn(command ? script : process.execPath, command ? args : [...nodeArgs, path, ...args], {
        cwd: cwd ?? REPO_DIR,
        env: {
          ...process.env,
          ...env,
          BATTERY_CHILD_DEADLINE: String(childDeadline),
          ...(umask !== undefined && { BATTERY_UMASK: String(umask) }),
        },
        stdio: ["pipe", "pipe", "pipe"],
        ...(uid !== undefined && { uid, gid: gid ?? uid }),
      });
      const child = new Child(proc, tag, logFile);
      children.add(child);
      child.exited.then(() => children.delete(child));
      // The parent's own deadline on the child, in case it ignores its own.
      const killer = setTimeout(() => child.kill(), Math.max(0, childDeadline + 1500 - Date.now()));
      killer.unref();
      child.exited.then(() => clearTimeout(killer));
      return child;
    },

    /**
     * Runs one check. `fn(c)` calls c.trial() per attempt (or c.attempt()/c.fail() by hand),
     * c.lost(n) for data lost, and sets c.note. An exception outside a trial fails the check.
     */
    async check(checkName, fn) {
      const c = new Check(checkName);
      const t0 = Date.now();
      try {
        await fn(c);
      } catch (error) {
        if (c.attempts === 0) c.attempts = 1;
        c.fail(`${error instanceof CheckFailure ? "" : "unexpected: "}${describe(error)}`);
      }
      const result = c.result(Date.now() - t0);
      results.push(result);
      const mark = result.passed ? "ok  " : "FAIL";
      console.log(
        `${mark} ${name} / ${checkName}: attempts ${result.attempts}, failures ${result.failures}, ` +
          `data lost ${result.dataLost} (${(result.ms / 1000).toFixed(1)} s)${result.note ? ` - ${result.note}` : ""}`,
      );
      for (const detail of result.details) console.log(`       ${detail}`);
      return result;
    },

    /** Prints the table, writes the results, cleans up and exits. */
    finish() {
      if (finished) return;
      finished = true;
      killChildren();
      flushSeen();
      const failed = results.filter((r) => !r.passed).length;
      console.log(`\n### ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
      console.log(markdownTable(RESULT_HEADER, results.map(resultRow)));
      console.log(`\n${name}: ${results.length - failed} passed, ${failed} failed`);
      writeFileSync(
        join(out, `results-${name}.json`),
        JSON.stringify({ group: name, ms: Date.now() - started, results }, null, 2),
      );
      if (!setting("BATTERY_KEEP")) {
        for (const dir of tempDirs) {
          if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
        }
      }
      // Drop this run's keys from the shared Redis, let stdout drain, then exit (open handles
      // such as Redis clients must not keep us alive).
      const code = failed > 0 ? 1 : 0;
      process.exitCode = code;
      const exit = () => setTimeout(() => process.exit(code), 50);
      const fallback = setTimeout(exit, 3000);
      cleanRedisKeys(runId).finally(() => {
        clearTimeout(fallback);
        exit();
      });
    },
  };
  current = g;
  return g;
}

function describe(error) {
  if (error instanceof Error) return `${error.name}: ${error.message}`.slice(0, 400);
  return String(error).slice(0, 400);
}

class Check {
  constructor(name) {
    this.name = name;
    this.attempts = 0;
    this.failures = 0;
    this.dataLost = 0;
    this.note = "";
    this.details = [];
  }
  attempt(n = 1) {
    this.attempts += n;
  }
  fail(message) {
    this.failures += 1;
    if (this.details.length < 6) this.details.push(String(message).slice(0, 400));
  }
  lost(n = 1) {
    this.dataLost += n;
  }
  /** One attempt: fails (once) if `fn` throws. Returns fn's value, or undefined on failure. */
  async trial(fn) {
    this.attempts += 1;
    try {
      return await fn();
    } catch (error) {
      this.fail(error instanceof CheckFailure ? error.message : `unexpected: ${describe(error)}`);
      return undefined;
    }
  }
  result(ms) {
    return {
      check: this.name,
      attempts: this.attempts,
      failures: this.failures,
      dataLost: this.dataLost,
      passed: this.attempts > 0 && this.failures === 0 && this.dataLost === 0,
      note: this.note,
      details: this.details,
      ms,
    };
  }
}

/** A child process: its protocol messages, its output (to a log file), its exit. */
class Child {
  constructor(proc, tag, logFile) {
    this.proc = proc;
    this.pid = proc.pid;
    this.tag = tag;
    this.logFile = logFile;
    this.messages = [];
    this.taken = new Set();
    this.waiters = new Set();
    this.alive = true;
    this.stderrTail = [];
    const log = (stream) => (line) => {
      appendFileSync(logFile, `${stream}: ${line}\n`);
      if (stream === "err") {
        this.stderrTail.push(line);
        if (this.stderrTail.length > 20) this.stderrTail.shift();
      }
      if (stream === "out" && line.startsWith(MESSAGE_PREFIX)) {
        try {
          this.messages.push(JSON.parse(line.slice(MESSAGE_PREFIX.length)));
        } catch {
          return;
        }
        for (const waiter of this.waiters) waiter();
      }
    };
    createInterface({ input: proc.stdout }).on("line", log("out"));
    createInterface({ input: proc.stderr }).on("line", log("err"));
    proc.stdin.on("error", () => {});
    this.exited = new Promise((resolve) => {
      proc.on("exit", (code, signal) => {
        this.alive = false;
        this.exit = { code, signal };
        for (const waiter of this.waiters) waiter();
        resolve(this.exit);
      });
      proc.on("error", (error) => {
        this.alive = false;
        this.exit = { code: null, signal: null, error: error.message };
        for (const waiter of this.waiters) waiter();
        resolve(this.exit);
      });
    });
  }

  /**
   * The first message (not yet taken) that matches; waits up to `ms`. `since` skips the
   * messages before that index; `consume: false` leaves the message for a later wait.
   */
  waitFor(predicate, ms, what = "a message", { since = 0, consume = true } = {}) {
    return new Promise((resolve, reject) => {
      const look = () => {
        for (let i = since; i < this.messages.length; i++) {
          if (this.taken.has(i) || !predicate(this.messages[i])) continue;
          if (consume) this.taken.add(i);
          done();
          resolve(this.messages[i]);
          return true;
        }
        if (!this.alive) {
          done();
          reject(
            new CheckFailure(
              `child ${this.tag} exited (${JSON.stringify(this.exit)}) before ${what}; stderr: ${stderrSummary(this.stderrTail)}`,
            ),
          );
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        done();
        reject(new CheckFailure(`timed out after ${ms} ms waiting for ${what} from child ${this.tag}`));
      }, ms);
      const waiter = () => look();
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      if (!look()) this.waiters.add(waiter);
    });
  }

  /** Waits for a message of type `t`. */
  waitType(t, ms) {
    return this.waitFor((m) => m.t === t, ms, `"${t}"`);
  }

  send(message) {
    if (this.alive) this.proc.stdin.write(`${JSON.stringify(message)}\n`);
  }

  kill(signal = "SIGKILL") {
    if (!this.alive) return;
    try {
      process.kill(this.pid, signal);
    } catch {
      // Already gone.
    }
  }

  /** Closes stdin (the child exits on it) and waits; kills after `ms`. */
  async stop(ms = 3000) {
    try {
      this.proc.stdin.end();
    } catch {}
    const timer = setTimeout(() => this.kill(), ms);
    await this.exited;
    clearTimeout(timer);
  }
}

/**
 * Groups that switch uid need root. Without it they record one failing row that says so
 * and stop (the battery must not pass by skipping its attacks).
 */
export function requireRoot(g) {
  if (process.getuid?.() === 0) return true;
  g.results.push({
    check: "runs as root (needed to run children as uid 65534)",
    attempts: 1,
    failures: 1,
    dataLost: 0,
    passed: false,
    note: `running as uid ${process.getuid?.()}; run the battery as root (CI does)`,
    details: [],
    ms: 0,
  });
  g.finish();
  return false;
}

/**
 * Waits for every child's "ready". When one dies or hangs instead, the group records a failing
 * row that says which and why, and finishes (its other checks cannot run without them).
 */
export async function allReady(g, children, ms, what) {
  const started = Date.now();
  try {
    await Promise.all(children.map((child) => child.waitType("ready", ms)));
    return Date.now() - started;
  } catch (error) {
    g.results.push({
      check: `${what} start`,
      attempts: children.length,
      failures: 1,
      dataLost: 0,
      passed: false,
      note: String(error.message).slice(0, 300),
      details: [],
      ms: Date.now() - started,
    });
    g.finish();
    return new Promise(() => {}); // finish() exits the process
  }
}

/** Deletes the keys a run left in the shared Redis (`battery-*<runId>*` and their lock keys). */
export async function cleanRedisKeys(runId) {
  let client;
  try {
    const { createClient } = await import("@redis/client");
    client = createClient({
      url: setting("BATTERY_REDIS_URL") ?? "redis://127.0.0.1:6379",
      socket: { connectTimeout: 1000, reconnectStrategy: false },
    });
    client.on("error", () => {});
    await client.connect();
    for (const pattern of [`battery-*${runId}*`, `credcache:lock:battery-*${runId}*`]) {
      for await (const keys of client.scanIterator({ MATCH: pattern, COUNT: 500 })) {
        const list = [keys].flat();
        if (list.length > 0) await client.del(list);
      }
    }
  } catch {
    // Redis is down: nothing of ours is in it either.
  } finally {
    try {
      await client?.close?.();
    } catch {
      // Never connected.
    }
  }
}

/** Object.prototype's own names now; compare later with prototypeIntact(). */
export function prototypeSnapshot() {
  return Object.getOwnPropertyNames(Object.prototype).sort().join(",");
}

export function prototypeIntact(snapshot) {
  const probe = {};
  return (
    prototypeSnapshot() === snapshot &&
    probe.polluted === undefined &&
    probe.v === undefined &&
    probe.accessKeyId === undefined &&
    probe.isAdmin === undefined
  );
}

/** The error line of a child's stderr (Node ends a crash with a stack and its version). */
function stderrSummary(lines) {
  const error = lines.find((line) => /\b\w*Error\b|SQLITE_|EACCES|EPERM|refus/.test(line));
  return [error, ...lines.slice(-2)].filter(Boolean).join(" / ").slice(0, 400);
}
