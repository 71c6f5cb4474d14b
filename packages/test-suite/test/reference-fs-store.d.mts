import type { CredentialCache } from "@credcache/core";

export function referenceFsStore(options: { location: string }): CredentialCache;
export default referenceFsStore;
