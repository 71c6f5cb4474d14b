import { type ImdsEmulator, startImdsEmulator } from "@credcache/imds-emulator";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  fromCachedInstanceMetadata,
  fromCachedTemporaryCredentials,
  instanceMetadataKey,
  readHostIdentity,
} from "../src/index.js";
import { issuedSecrets, recorder, scriptedStore } from "./harness.js";
import { type StsStub, startStsStub } from "./servers/credentialServers.mjs";

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
    const { kind, id } = readHostIdentity();
    const key = `imds:${imds.url}:${kind}:${id}`;
    expect(instanceMetadataKey()).toBe(key);
    expect([...store.data.keys()]).toEqual([key]);
    expect(JSON.parse(store.data.get(key)!.value).source).toBe("imds");
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
});

describe("fromCachedTemporaryCredentials (the real SDK fromTemporaryCredentials against an STS stub)", () => {
  let sts: StsStub;
  beforeAll(async () => {
    sts = await startStsStub();
  });
  afterAll(() => sts.close());

  const RoleArn = "arn:aws:iam::123456789012:role/tenant";
  const master = { accessKeyId: "AKIAEXAMPLEMASTER", secretAccessKey: "SECRETFIXTUREmaster" };

  function assume(cache: ReturnType<typeof scriptedStore>["store"], params: Record<string, unknown>) {
    return fromCachedTemporaryCredentials({
      cache,
      params: { RoleArn, ...params },
      masterCredentials: master,
      clientConfig: { region: "us-east-1", endpoint: sts.url, maxAttempts: 1 },
      proactiveRefresh: false,
    });
  }

  async function resolve(provider: ReturnType<typeof assume>) {
    const identity = await provider();
    for (const c of sts.issued) {
      issuedSecrets.add(c.secretAccessKey);
      issuedSecrets.add(c.sessionToken);
    }
    return identity;
  }

  it("a job with the wrong ExternalId never gets the credentials another tenant got with the right one (issue 12)", async () => {
    const { store } = scriptedStore(Date);
    const right = await resolve(assume(store, { ExternalId: "tenant-7-secret" }));
    const wrong = await resolve(assume(store, { ExternalId: "guess" }));
    expect(wrong.accessKeyId).not.toBe(right.accessKeyId);
    expect(sts.paramsOf(right.accessKeyId)?.ExternalId).toBe("tenant-7-secret");
    expect(sts.paramsOf(wrong.accessKeyId)?.ExternalId).toBe("guess");
    // The same request again is a hit: the key is stable.
    const again = await resolve(assume(store, { ExternalId: "tenant-7-secret" }));
    expect(again.accessKeyId).toBe(right.accessKeyId);
  });

  it("a logger passed to the preset never receives the session token (the STS client logs AssumeRole output at info)", async () => {
    const { store } = scriptedStore(Date);
    const rec = recorder();
    const provider = fromCachedTemporaryCredentials({
      cache: store,
      params: { RoleArn, RoleSessionName: "logged" },
      masterCredentials: master,
      clientConfig: { region: "us-east-1", endpoint: sts.url, maxAttempts: 1 },
      proactiveRefresh: false,
      logger: rec.logger,
    });
    const identity = await resolve(provider);
    const logged = rec.lines.map((line) => line.text).join("\n");
    expect(logged).toContain("fromTemporaryCredentials"); // the SDK's debug lines still arrive
    expect(logged).not.toContain(identity.sessionToken);
    expect(logged).not.toContain(identity.secretAccessKey);
  });

  it("a job asking for a narrower session Policy never gets the full-permission set (issue 12)", async () => {
    const { store } = scriptedStore(Date);
    const full = await resolve(assume(store, { RoleSessionName: "job" }));
    const policy =
      '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}';
    const narrow = await resolve(assume(store, { RoleSessionName: "job", Policy: policy }));
    expect(narrow.accessKeyId).not.toBe(full.accessKeyId);
    expect(sts.paramsOf(narrow.accessKeyId)?.Policy).toBe(policy);
    expect(sts.paramsOf(full.accessKeyId)?.Policy).toBeUndefined();
    expect([...store.data.keys()].every((key) => key.startsWith(`sts:${RoleArn}:job:`))).toBe(true);
  });
});
