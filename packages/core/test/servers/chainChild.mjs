// One process resolving credentials through the cached default chain over a file store:
// prints one JSON line { source, key, accessKeyId } or { error }. argv[2]: the store directory.
// The environment (the parent's) decides the source, as it does for the SDK's chain.
import { fromCachedNodeProviderChain, nodeProviderChainSource } from "@credcache/core";
import { fileCache } from "@credcache/fs";

const cache = fileCache({ dir: process.argv[2] });
const { source, key } = nodeProviderChainSource();
const credentials = fromCachedNodeProviderChain({ cache, proactiveRefresh: false, timeout: 5_000 });
let code = 0;
try {
  const identity = await credentials();
  process.stdout.write(`${JSON.stringify({ source, key, accessKeyId: identity.accessKeyId })}\n`);
} catch (error) {
  process.stdout.write(`${JSON.stringify({ source, key, error: `${error.name}: ${error.message}` })}\n`);
  code = 1;
}
await credentials.close();
await cache.close?.();
process.exit(code);
