// Starts worker processes the way a process manager would (all at once) and collects
// their one-line JSON reports. Used by the demo and the tests.
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const WORKER = join(dirname(fileURLToPath(import.meta.url)), "worker.mjs");
/** The example's root: adapters are resolved from its package.json. */
export const EXAMPLE_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

/**
 * @typedef {object} WorkerResult
 * @property {number | null} code exit status
 * @property {NodeJS.Signals | null} signal
 * @property {any} report the parsed JSON report, or undefined if the worker printed none
 * @property {string} stderr
 */

/**
 * Runs one worker to completion.
 *
 * @param {string[]} args
 * @param {Record<string, string | undefined>} env merged over process.env
 * @param {{ timeoutMs?: number }} [options] kill the worker after this long
 * @returns {Promise<WorkerResult>}
 */
export function runWorker(args, env, { timeoutMs = 60_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WORKER, ...args], {
      cwd: EXAMPLE_ROOT,
      env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk) => {
      if (stderr.length < 64_000) stderr += chunk;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const line = stdout.trim().split("\n").at(-1);
      let report;
      try {
        report = line ? JSON.parse(line) : undefined;
      } catch {
        report = undefined;
      }
      resolve({ code, signal, report, stderr });
    });
  });
}

/**
 * Runs `count` workers at once and waits for all of them.
 *
 * @param {number} count
 * @param {string[]} args
 * @param {Record<string, string | undefined>} env
 * @param {{ timeoutMs?: number, onExit?: (result: WorkerResult) => void }} [options]
 * @returns {Promise<WorkerResult[]>}
 */
export function runWorkers(count, args, env, { onExit, ...options } = {}) {
  return Promise.all(
    Array.from({ length: count }, () =>
      runWorker(args, env, options).then((result) => {
        onExit?.(result);
        return result;
      }),
    ),
  );
}
