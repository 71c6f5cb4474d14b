// Issue 19: a tenant of a shared Redis plants a huge value under the victim's key. The
// victim's read is refused as soon as the reply's length is read (nothing buffered, no
// event-loop stall) and its credentials still come from the source.
import { afterAll, beforeAll, expect, it } from "vitest";
import { RespClient } from "../src/respClient.js";
import { runFixture, startRedisServer } from "./redis.js";
import { describeWithRedisServer } from "./redisServer.js";

describeWithRedisServer("a planted 50 MB value under the victim's key (private redis-server)", () => {
  let server: Awaited<ReturnType<typeof startRedisServer>>;

  beforeAll(async () => {
    server = await startRedisServer(["--proto-max-bulk-len", "1gb"]);
    const admin = new RespClient(`redis://127.0.0.1:${server.port}`, {
      connectTimeoutMs: 5_000,
      commandTimeoutMs: 60_000,
    });
    const planted = "x".repeat(50 * 1024 * 1024);
    // Under the record's key in both layouts: the one keyed by hash tag, and the one before it.
    await admin.send(["SET", "victim::{k}", planted]);
    await admin.send(["SET", "victim::k", planted]);
    await admin.close();
  });

  afterAll(() => server?.stop());

  it("the read fails fast as a cache error, the source answers, memory and the event loop stay calm (built package)", async () => {
    const result = await runFixture(["planted-value.mjs", `redis://127.0.0.1:${server.port}`, "victim", "k"]);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as {
      accessKeyId: string;
      sourceCalls: number;
      events: Array<{ type: string; message?: string }>;
      wallMs: number;
      rssGrowthMb: number;
      maxStallMs: number;
    };
    console.info(
      `[planted 50 MB value] wall ${report.wallMs} ms, peak RSS growth ${report.rssGrowthMb} MB, longest event-loop stall ${report.maxStallMs} ms`,
    );
    expect(report).toMatchObject({ accessKeyId: "ASIAPLANTEDVALUE0001", sourceCalls: 1 });
    const refused = report.events.find((event) => event.type === "cache-error" && event.message);
    expect(refused?.message).toMatch(/too large to be a record/);
    // Generous bounds, so a loaded machine cannot fail them; main used 214 MB and stalled 503 ms.
    expect(report.rssGrowthMb).toBeLessThan(60);
    expect(report.maxStallMs).toBeLessThan(1_000);
  });
});
