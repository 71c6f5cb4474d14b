// One process of a cross-process coordination test: resolves credentials once through
// fromCache over a real store and the real SDK fromInstanceMetadata (the emulator), and
// reports on stdout, one JSON line each: every cache event, then its result.
//
// argv[2]: JSON { store, key, options, pauseAfterFetch }. With pauseAfterFetch the process
// stops itself (SIGSTOP) once the SDK has returned, before fromCache writes: a paused holder.
import { fromInstanceMetadata } from "@aws-sdk/credential-providers";
import { fromCache } from "@credcache/core";
import { openStore } from "../../battery/stores.mjs";

const spec = JSON.parse(process.argv[2]);
const say = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);
const sdk = fromInstanceMetadata({ timeout: 1_000, maxRetries: 0 });
const provider = async (properties) => {
  const identity = await sdk(properties);
  if (spec.pauseAfterFetch) {
    say({ type: "fetched", accessKeyId: identity.accessKeyId });
    process.kill(process.pid, "SIGSTOP");
  }
  return identity;
};
const store = await openStore(spec.store);
const credentials = fromCache({
  provider,
  cache: store,
  key: spec.key,
  proactiveRefresh: false,
  ...spec.options,
  onEvent: (event) => say({ type: "event", event }),
});
let code = 0;
try {
  const identity = await credentials();
  say({ type: "result", accessKeyId: identity.accessKeyId, expiration: identity.expiration?.getTime() });
} catch (error) {
  say({ type: "error", name: error.name, message: error.message });
  code = 1;
}
await credentials.close();
await store.close?.();
process.exit(code);
