/** The other user: `nobody` on Debian. */
export const OTHER_UID: number;

/** Why children cannot run as uid 65534 here, or undefined when they can. */
export const OTHER_USER_MISSING: string | undefined;

/** `describe(name, body)` where a child can run as uid 65534; skipped with a reason (failing under CI) where not. */
export function describeAsOtherUser(name: string, body: () => void): void;

/** `it(name, fn, timeout)` where a child can run as uid 65534; skipped with a reason (failing under CI) where not. */
export function itAsOtherUser(name: string, fn: () => unknown, timeout?: number): void;

export { reachableBundle, reachableBundleSync } from "./bundle.mjs";
