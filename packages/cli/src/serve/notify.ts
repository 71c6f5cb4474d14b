import { spawn } from "node:child_process";

/**
 * Tells systemd the service is ready (`Type=notify`) when `NOTIFY_SOCKET` is set. Node
 * cannot send on a unix datagram socket without a native module, so this runs systemd's
 * own `systemd-notify --ready`, naming this process as the main PID; the unit needs
 * `NotifyAccess=all` for systemd to accept a message sent by a child. Resolves to a
 * warning to log, or `undefined` when it worked or there is nothing to notify.
 */
export function notifyReady(env: Record<string, string | undefined>): Promise<string | undefined> {
  if (!env.NOTIFY_SOCKET) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const child = spawn("systemd-notify", ["--ready", `--pid=${process.pid}`], {
      env: { ...process.env, NOTIFY_SOCKET: env.NOTIFY_SOCKET },
      stdio: "ignore",
    });
    child.on("error", (error: NodeJS.ErrnoException) =>
      resolve(`NOTIFY_SOCKET is set but systemd-notify could not run (${error.code}); use Type=exec instead`),
    );
    child.on("close", (code) =>
      resolve(code === 0 ? undefined : `systemd-notify --ready exited with ${code}`),
    );
  });
}
