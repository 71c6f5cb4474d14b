import { hostname } from "node:os";
import { type ImdsEmulator, startImdsEmulator } from "@credcache/imds-emulator";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { fromCachedInstanceMetadata, fromCachedTemporaryCredentials } from "../src/index.js";
import { recorder, scriptedStore } from "./harness.js";

let imds: ImdsEmulator;
const savedEndpoint = process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT;

beforeAll(async () => {
  imds = await startImdsEmulator({ port: 0 });
  process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = imds.url;
});
afterAll(async () => {
  await imds.close();
  if (savedEndpoint === undefined) delete process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
  else process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = savedEndpoint;
});
afterEach(() => {
  imds.setFaults({});
  imds.resetStats();
});

describe("fromCachedInstanceMetadata (the real SDK fromInstanceMetadata against the emulator)", () => {
  it("scopes its key to the IMDS endpoint and this host, and shares one fetch through the store", async () => {
    const { store } = scriptedStore(Date);
    const a = fromCachedInstanceMetadata({ cache: store, proactiveRefresh: false, timeout: 2000 });
    const b = fromCachedInstanceMetadata({ cache: store, proactiveRefresh: false, timeout: 2000 });
    const [x, y] = await Promise.all([a(), b()]);
    expect(x.accessKeyId).toBe(imds.currentCredentials().accessKeyId);
    expect(y.accessKeyId).toBe(x.accessKeyId);
    expect(imds.stats.credentialFetches).toBe(1);
    expect([...store.data.keys()]).toEqual([`imds:${imds.url}:${hostname()}`]);
    expect(JSON.parse(store.data.get(`imds:${imds.url}:${hostname()}`)!.value).source).toBe("imds");
  });

  it("rides out two failed credential reads of a throttled IMDS (2 retries by default; the SDK alone gives up)", async () => {
    const { store } = scriptedStore(Date);
    imds.setFaults({ credentials: { status: 429, count: 2 } });
    const provider = fromCachedInstanceMetadata({ cache: store, proactiveRefresh: false });
    const identity = await provider();
    expect(identity.accessKeyId).toBe(imds.currentCredentials().accessKeyId);
    expect(imds.stats.statuses[429]).toBe(2);
    imds.setFaults({ credentials: { status: 429, count: 1 } });
    const { fromInstanceMetadata } = await import("@aws-sdk/credential-providers");
    await expect(fromInstanceMetadata()(), "the SDK's own default: no retry").rejects.toThrow();
  });

  it("keeps serving expired credentials through an outage (staleIfError on by default)", async () => {
    let now = Date.now();
    const clock = { now: () => now };
    const rec = recorder();
    const { store } = scriptedStore(clock);
    const provider = fromCachedInstanceMetadata({
      cache: store,
      clock,
      proactiveRefresh: false,
      timeout: 300,
      logger: rec.logger,
      onEvent: rec.onEvent,
    });
    const first = await provider();
    now = first.expiration!.getTime() + 1000; // the credentials have expired
    imds.setFaults({ any: { status: 500 } });
    const during = await provider();
    expect(during.accessKeyId).toBe(first.accessKeyId);
    expect(during.expiration!.getTime()).toBeGreaterThan(now);
    expect(rec.of("extended")).toHaveLength(1);
  });

  it("namespaces temporary credentials by role ARN and session name", async () => {
    const { store } = scriptedStore(Date);
    const provider = fromCachedTemporaryCredentials({
      cache: store,
      params: { RoleArn: "arn:aws:iam::123456789012:role/app" },
      masterCredentials: { accessKeyId: "AKIAEXAMPLE", secretAccessKey: "SECRETFIXTUREmaster" },
      clientConfig: { region: "us-east-1", endpoint: "http://127.0.0.1:9", maxAttempts: 1 },
      proactiveRefresh: false,
    });
    // STS is unreachable here: the call fails, but the key it would use is observable in the event.
    const rec = recorder();
    const withEvents = fromCachedTemporaryCredentials({
      cache: store,
      params: { RoleArn: "arn:aws:iam::123456789012:role/app", RoleSessionName: "worker" },
      masterCredentials: { accessKeyId: "AKIAEXAMPLE", secretAccessKey: "SECRETFIXTUREmaster" },
      clientConfig: { region: "us-east-1", endpoint: "http://127.0.0.1:9", maxAttempts: 1 },
      proactiveRefresh: false,
      onEvent: rec.onEvent,
    });
    await expect(provider()).rejects.toThrow();
    await expect(withEvents()).rejects.toThrow();
    expect(rec.of("miss")[0]?.key).toBe("sts:arn:aws:iam::123456789012:role/app:worker");
  });
});
