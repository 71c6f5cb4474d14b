import { CacheConfigError, describeValue } from "@credcache/core";

/**
 * Checks a namespace option of this package. ":" is refused: it separates namespace and key
 * (`<namespace>:<key>`, `<namespace>::<key>` in @keyv/redis, `credcache:lock:<namespace>:<key>`),
 * so namespace "X" with key ":k" and namespace "X:" with key "k" would name one entry.
 */
export function checkNamespace(fn: string, namespace: unknown): void {
  if (namespace === undefined) return;
  if (typeof namespace !== "string" || namespace === "") {
    throw new CacheConfigError(
      `${fn}: "namespace" must be a non-empty string, got ${describeValue(namespace)}`,
    );
  }
  if (namespace.includes(":")) {
    throw new CacheConfigError(
      `${fn}: "namespace" must not contain ":" (it separates the namespace from the key, so namespaces ` +
        `"X" and "X:" could share entries), got ${describeValue(namespace)}; use "-" or "_" instead`,
    );
  }
}
