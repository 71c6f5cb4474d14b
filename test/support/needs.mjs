// One rule for tests that need something of the machine (redis-server, a second user):
// where it is there they run; where it is not they are skipped with one line saying why,
// except under CI, where a missing service must not pass silently and they fail instead.
import { it } from "vitest";

/**
 * Registers `name` with `register` (`describe` or `it`) when `missing` is undefined; when it
 * says what is missing, skips it with one line saying so, or under CI registers a test that
 * fails with that reason.
 */
export function registerNeeding(missing, register, name, body, timeout) {
  if (missing === undefined) return register(name, body, timeout);
  if (process.env.CI) {
    return it(`${name}: cannot run here`, () => {
      throw new Error(`CI is set and these tests cannot run: ${missing}`);
    });
  }
  console.warn(`skipping "${name}": ${missing}`);
  return register.skip(name, body, timeout);
}
