/** A script file, or code (`contents`) whose imports resolve from `resolveDir`, saved as `name`. */
export type BundledScript = string | { name: string; contents: string; resolveDir: string };

/**
 * Bundles `script` and everything it imports (native addons copied beside it) into one file
 * in a fresh 0755 directory under the temp dir, once per process, and resolves with its
 * path: a child running as another user can run it wherever the checkout lies.
 */
export function reachableBundle(script: BundledScript): Promise<string>;

/** {@link reachableBundle}, synchronously. */
export function reachableBundleSync(script: BundledScript): string;

/** Removes every bundle this process made. */
export function removeBundles(): void;
