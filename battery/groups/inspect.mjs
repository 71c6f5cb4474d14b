// util.inspect of everything a user might log (part of the secret scan): every store after
// it holds credentials, the provider, the credentials it returns, its stats, the errors it
// throws, at the default depth and at depth Infinity with hidden properties shown.

import { createHash } from "node:crypto";
import { join } from "node:path";
import { inspect } from "node:util";
import { encryptedCache, fromCache } from "@credcache/core";
import { startImdsEmulator } from "@credcache/imds-emulator";
import { expect, imdsSource, startGroup } from "../harness.mjs";
import { openStore, REDIS_URL } from "../stores.mjs";

const g = startGroup("inspect");
const imds = await startImdsEmulator();
const dir = g.tmp("stores", { mode: 0o700 });
const specs = {
  memory: { kind: "memory" },
  fs: { kind: "fs", dir: join(dir, "fs") },
  sqlite: { kind: "sqlite", path: join(dir, "cache.db") },
  "keyv+redis": { kind: "redis", url: REDIS_URL, namespace: `battery-inspect-${g.runId}` },
};
const OPTIONS = [
  {},
  { depth: Number.POSITIVE_INFINITY },
  { depth: Number.POSITIVE_INFINITY, showHidden: true },
];

function leaks(text) {
  return imds.secretsIssued().some((s) => {
    for (let i = 0; i + 20 <= s.length; i += 20) if (text.includes(s.slice(i, i + 20))) return true;
    return false;
  });
}

for (const [label, spec] of Object.entries(specs)) {
  await g.check(`${label}: util.inspect of store, provider, credentials, stats, errors`, async (c) => {
    const inner = await openStore(spec);
    const stores = {
      plain: inner,
      encrypted: encryptedCache(inner, {
        keys: [createHash("sha256").update("battery inspect key").digest()],
      }),
    };
    for (const [variant, store] of Object.entries(stores)) {
      await c.trial(async () => {
        const seen = g.observe();
        const key = `inspect-${variant}-${g.runId}`;
        const provider = fromCache({
          provider: imdsSource(imds.url),
          cache: store,
          key,
          logger: seen.logger,
          onEvent: seen.onEvent,
        });
        const identity = await provider();
        // A failure with credentials in hand, and one without: their errors get logged too.
        imds.setFaults({ credentials: { status: 500 } });
        let error;
        try {
          await provider({ forceRefresh: true });
          await fromCache({ provider: imdsSource(imds.url), key: `${key}-none`, logger: seen.logger })();
        } catch (e) {
          error = e;
        } finally {
          imds.setFaults(undefined);
        }
        g.secrets(imds.secretsIssued());
        const things = { store, provider, identity, stats: provider.stats(), error, events: seen.events };
        const found = [];
        for (const [name, value] of Object.entries(things)) {
          for (const options of OPTIONS) {
            const text = inspect(value, options);
            g.seen(text);
            if (leaks(text)) found.push(`${name} ${JSON.stringify(options)}`);
          }
        }
        provider.close();
        expect(found.length === 0, () => `${variant}: a secret in util.inspect of ${found.join(", ")}`);
      });
    }
    await inner.close?.();
    c.note = "plain and encrypted; default depth, depth Infinity, showHidden";
  });
}

g.secrets(imds.secretsIssued());

await imds.close();
g.finish();
