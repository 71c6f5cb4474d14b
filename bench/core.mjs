// Warm L1 hit of fromCache against the SDK's own memoize over the same source.

import { fromCache } from "@credcache/core";
import { memoize } from "@smithy/property-provider";
import { fmtMicros, fmtRatio, interleave, table } from "./measure.mjs";

export async function runCoreBench({ rounds = 30 } = {}) {
  const source = async () => ({
    accessKeyId: "ASIABENCH",
    secretAccessKey: "bench-secret",
    sessionToken: "bench-token",
    expiration: new Date(Date.now() + 6 * 3600_000),
  });
  // The SDK client's own memoization: refresh when 5 min are left.
  const sdk = memoize(
    source,
    (c) => c.expiration !== undefined && c.expiration.getTime() - Date.now() < 300_000,
    (c) => c.expiration !== undefined,
  );
  const cached = fromCache({ provider: source, proactiveRefresh: false });
  await sdk();
  await cached();
  const results = await interleave(
    [
      { name: "SDK memoize warm hit", run: () => sdk(), batch: 1000 },
      { name: "fromCache warm L1 hit", run: () => cached(), batch: 1000 },
    ],
    { rounds, perRound: 20 },
  );
  const [base, ours] = results;
  console.log("\n## Warm L1 hit: fromCache vs the SDK's memoize (same source, same run)\n");
  const text = table(
    ["operation", "p50", "p99", "ratio to memoize (p50)"],
    [
      [base.name, fmtMicros(base.p50), fmtMicros(base.p99), "1.00×"],
      [ours.name, fmtMicros(ours.p50), fmtMicros(ours.p99), fmtRatio(ours.p50 / base.p50)],
    ],
  );
  return { results, text, ratio: ours.p50 / base.p50 };
}

if (import.meta.url === `file://${process.argv[1]}`) await runCoreBench();
