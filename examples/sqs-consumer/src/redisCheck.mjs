import { connect } from "node:net";

/**
 * Whether a Redis server answers PING at `url`, within `timeoutMs`. No client library:
 * the demo and the tests use it to decide whether to include the Redis backend.
 *
 * @param {string} [url]
 * @param {number} [timeoutMs]
 * @returns {Promise<boolean>}
 */
export function isRedisReachable(url = "redis://127.0.0.1:6379", timeoutMs = 500) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname || "127.0.0.1", port: Number(port || 6379) });
    const done = (/** @type {boolean} */ ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("error", () => done(false));
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.once("data", (data) => done(/^\+PONG/.test(String(data))));
  });
}
