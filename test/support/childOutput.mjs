// What a child process printed: the one way the tests, the battery and the benches collect
// a child's output instead of each wiring up its own listeners.

/**
 * Collects `child`'s stdout and stderr as UTF-8 text (stderr up to about `maxStderr`
 * characters) and resolves with them and its exit code and signal once it has closed.
 * With `killAfterMs`, a child still running by then is killed with SIGKILL. Rejects when the
 * child could not be spawned.
 */
export function outputOf(child, { maxStderr = Number.POSITIVE_INFINITY, killAfterMs } = {}) {
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk) => {
    stdout += chunk;
  });
  child.stderr.setEncoding("utf8").on("data", (chunk) => {
    if (stderr.length < maxStderr) stderr += chunk;
  });
  const kill = killAfterMs === undefined ? undefined : setTimeout(() => child.kill("SIGKILL"), killAfterMs);
  return new Promise((resolve, reject) => {
    child.on("error", (error) => {
      clearTimeout(kill);
      reject(error);
    });
    child.on("close", (code, signal) => {
      clearTimeout(kill);
      resolve({ code, signal, stdout, stderr });
    });
  });
}
