/**
 * The emulator proven against the real AWS SDK v3 clients: what they call, when they fall back
 * to IMDSv1, how they react to each fault. Expectations follow the SDK source
 * (@smithy/credential-provider-imds fromInstanceMetadata.ts and staticStabilityProvider.ts,
 * @aws-sdk/ec2-metadata-service MetadataService.ts), not the emulator.
 */
import { fromInstanceMetadata, fromNodeProviderChain } from "@aws-sdk/credential-providers";
import { MetadataService } from "@aws-sdk/ec2-metadata-service";
import { describe, expect, it } from "vitest";
import { recordingLogger, sdkEmulatorPerTest } from "./helpers.js";

const ROLE = "credcache-demo-role";

/** Starts an emulator and points this process's SDK at it (and only at it). */
const emulators = sdkEmulatorPerTest();
const start = emulators.start;

describe("IMDSv2 with the real SDK", () => {
  it("fromInstanceMetadata gets the current credentials with a token PUT and token-bearing GETs", async () => {
    await start({ imdsv2Only: true });
    const creds = await fromInstanceMetadata()();
    const current = emulators.current.currentCredentials();
    expect(creds.accessKeyId).toBe(current.accessKeyId);
    expect(creds.expiration).toEqual(current.expiration);
    expect(emulators.current.secretsIssued()).toEqual(
      expect.arrayContaining([creds.secretAccessKey, creds.sessionToken]),
    );
    expect(emulators.current.stats).toMatchObject({
      requests: { token: 1, role: 1, credentials: 1, total: 3 },
      reads: { withToken: 2, withoutToken: 0 },
      tokensIssued: 1,
      credentialFetches: 1,
      statuses: { 200: 3 },
    });
  });

  it("fromNodeProviderChain falls through env and files to IMDS and gets the same", async () => {
    await start({ imdsv2Only: true });
    const creds = await fromNodeProviderChain()();
    expect(creds.accessKeyId).toBe(emulators.current.currentCredentials().accessKeyId);
    expect(emulators.current.stats).toMatchObject({
      tokensIssued: 1,
      reads: { withToken: 2, withoutToken: 0 },
    });
  });

  it("MetadataService reads the role, the credentials and plain metadata with a token per request", async () => {
    await start({ imdsv2Only: true, instanceId: "i-0000000000000abcd" });
    const metadata = new MetadataService({ retries: 0 });
    expect(await metadata.request("/latest/meta-data/iam/security-credentials/", {})).toBe(ROLE);
    const doc = JSON.parse(await metadata.request(`/latest/meta-data/iam/security-credentials/${ROLE}`, {}));
    expect(doc.AccessKeyId).toBe(emulators.current.currentCredentials().accessKeyId);
    const extended = JSON.parse(
      await metadata.request(`/latest/meta-data/iam/security-credentials-extended/${ROLE}`, {}),
    );
    expect(extended.AccountId).toBe("123456789012");
    expect(await metadata.request("/latest/meta-data/instance-id", {})).toBe("i-0000000000000abcd");
    // MetadataService does not keep its token: one PUT per request.
    expect(emulators.current.stats).toMatchObject({
      tokensIssued: 4,
      reads: { withToken: 4, withoutToken: 0 },
    });
  });

  it("a rotation is picked up by the next resolution", async () => {
    await start();
    const provider = fromInstanceMetadata();
    const first = await provider();
    const rotated = emulators.current.rotate();
    const second = await provider();
    expect(second.accessKeyId).toBe(rotated.accessKeyId);
    expect(second.accessKeyId).not.toBe(first.accessKeyId);
    expect(emulators.current.stats.credentialSets).toBe(2);
  });

  it("copes with 200 concurrent resolutions", async () => {
    await start({ imdsv2Only: true });
    // A generous timeout: on a busy 2-core machine a token PUT that takes over the default 1 s
    // sends the SDK down the v1 path, which imdsv2Only refuses.
    const all = await Promise.all(
      Array.from({ length: 200 }, () => fromInstanceMetadata({ timeout: 10_000 })()),
    );
    expect(new Set(all.map((c) => c.accessKeyId))).toEqual(
      new Set([emulators.current.currentCredentials().accessKeyId]),
    );
    expect(emulators.current.stats).toMatchObject({
      tokensIssued: 200,
      credentialFetches: 200,
      requests: { total: 600 },
    });
  });
});

describe("IMDSv1 fallback, where the SDK falls back", () => {
  it.each([403, 404, 405])(
    "token PUT answering %i: fromInstanceMetadata reads without a token",
    async (status) => {
      await start({ faults: { token: { status } } });
      const creds = await fromInstanceMetadata()();
      expect(creds.accessKeyId).toBe(emulators.current.currentCredentials().accessKeyId);
      expect(emulators.current.stats).toMatchObject({
        statuses: { [status]: 1 },
        tokensIssued: 0,
        reads: { withToken: 0, withoutToken: 2 },
        credentialFetches: 1,
      });
    },
  );

  it("token PUT answering 400: fromInstanceMetadata fails without reading anything", async () => {
    await start({ faults: { token: { status: 400 } } });
    await expect(fromInstanceMetadata()()).rejects.toThrow("EC2 Metadata token request returned error");
    expect(emulators.current.stats.reads).toEqual({ withToken: 0, withoutToken: 0 });
  });

  it("token PUT answering 503 or timing out: fromInstanceMetadata still falls back for that call", async () => {
    // Any token failure but 400 sends this resolution down the v1 path; only 403/404/405
    // make the fallback stick for the provider's later calls.
    await start({ faults: { token: { status: 503 } } });
    const viaStatus = await fromInstanceMetadata()();
    expect(viaStatus.accessKeyId).toBe(emulators.current.currentCredentials().accessKeyId);
    emulators.current.setFaults({ token: { hang: true } });
    emulators.current.resetStats();
    const viaTimeout = await fromInstanceMetadata({ timeout: 1000 })();
    expect(viaTimeout.accessKeyId).toBe(viaStatus.accessKeyId);
    expect(emulators.current.stats).toMatchObject({ hangs: 1, reads: { withToken: 0, withoutToken: 2 } });
  });

  it("MetadataService falls back to a tokenless read when the token PUT answers 403", async () => {
    await start({ faults: { token: { status: 403 } } });
    const metadata = new MetadataService({ retries: 0 });
    expect(await metadata.request("/latest/meta-data/iam/security-credentials/", {})).toBe(ROLE);
    expect(emulators.current.stats.reads).toEqual({ withToken: 0, withoutToken: 1 });
  });

  it("with imdsv2Only, no client gets credentials without a token", async () => {
    await start({ imdsv2Only: true, faults: { token: { status: 403 } } });
    await expect(fromInstanceMetadata()()).rejects.toMatchObject({ statusCode: 401 });
    expect(emulators.current.stats.statuses[401]).toBe(1);
    await expect(fromNodeProviderChain()()).rejects.toThrow("Could not load credentials from any providers");
    expect(emulators.current.stats.statuses[401]).toBe(2);
    const metadata = new MetadataService({ retries: 0 });
    await expect(metadata.request(`/latest/meta-data/iam/security-credentials/${ROLE}`, {})).rejects.toThrow(
      /401/,
    );
    expect(emulators.current.stats.statuses[401]).toBe(3);
    expect(emulators.current.stats.reads.withToken).toBe(0);
    expect(emulators.current.stats.credentialFetches).toBe(0);
    expect(emulators.current.secretsIssued()).toEqual([]);
  });

  it("AWS_EC2_METADATA_V1_DISABLED=true blocks the fallback: no tokenless read is sent", async () => {
    await start({ faults: { token: { status: 403 } } }, { AWS_EC2_METADATA_V1_DISABLED: "true" });
    await expect(fromInstanceMetadata()()).rejects.toMatchObject({ name: "InstanceMetadataV1FallbackError" });
    const metadata = new MetadataService({ retries: 0 });
    await expect(metadata.request("/latest/meta-data/iam/security-credentials/", {})).rejects.toThrow(/403/);
    expect(emulators.current.stats.reads).toEqual({ withToken: 0, withoutToken: 0 });
  });

  it("the ec2MetadataV1Disabled option blocks the fallback too", async () => {
    await start({ faults: { token: { status: 405 } } });
    await expect(fromInstanceMetadata({ ec2MetadataV1Disabled: true })()).rejects.toMatchObject({
      name: "InstanceMetadataV1FallbackError",
    });
    expect(emulators.current.stats.reads.withoutToken).toBe(0);
  });
});

describe("faults as the SDK sees them", () => {
  it("a hang on the credentials read makes the SDK time out", async () => {
    await start({ faults: { credentials: { hang: true } } });
    await expect(fromInstanceMetadata({ timeout: 500 })()).rejects.toThrow(/TimeoutError/);
    const metadata = new MetadataService({ retries: 0, httpOptions: { timeout: 500 } });
    await expect(metadata.request(`/latest/meta-data/iam/security-credentials/${ROLE}`, {})).rejects.toThrow(
      /timeout/i,
    );
    expect(emulators.current.stats.hangs).toBe(2);
    expect(emulators.current.stats.credentialFetches).toBe(0);
  });

  it("expired credentials trigger the SDK's static-stability extension", async () => {
    await start({ faults: { credentials: { expired: true } } });
    const logger = recordingLogger();
    const creds = await fromInstanceMetadata({ logger })();
    expect(creds.accessKeyId).toBe(emulators.current.currentCredentials().accessKeyId);
    expect(creds.expiration!.getTime()).toBeGreaterThan(Date.now());
    const warnings = logger.lines.filter((l) => l.level === "warn").map((l) => l.text);
    expect(warnings).toEqual([expect.stringContaining("Attempting credential expiration extension")]);
    // The warning names no secret.
    expect(warnings.join("\n")).not.toContain(creds.secretAccessKey);
  });

  it("fresh credentials are not extended (the warning above comes from the fault)", async () => {
    await start();
    const logger = recordingLogger();
    const creds = await fromInstanceMetadata({ logger })();
    expect(creds.expiration).toEqual(emulators.current.currentCredentials().expiration);
    expect(logger.lines.filter((l) => l.level === "warn")).toEqual([]);
  });

  it("a 503 burst is ridden out by maxRetries, and fails the call without them", async () => {
    await start({ faults: { credentials: { status: 503, count: 2 } } });
    const creds = await fromInstanceMetadata({ maxRetries: 2 })();
    expect(creds.accessKeyId).toBe(emulators.current.currentCredentials().accessKeyId);
    expect(emulators.current.stats.statuses[503]).toBe(2);
    emulators.current.setFaults({ credentials: { status: 503, count: 1 } });
    await expect(fromInstanceMetadata()()).rejects.toMatchObject({ statusCode: 503 });
  });

  it("a reset fails the resolution with a connection error", async () => {
    await start({ faults: { credentials: { reset: true } } });
    await expect(fromInstanceMetadata()()).rejects.toMatchObject({ code: "ECONNRESET" });
    expect(emulators.current.stats.resets).toBe(1);
  });

  it("a malformed document fails the resolution", async () => {
    await start({ faults: { credentials: { malformed: true } } });
    await expect(fromInstanceMetadata()()).rejects.toThrow(SyntaxError);
  });

  it("@aws-sdk/credential-providers' fromInstanceMetadata does not serve past credentials on a later failure", async () => {
    // The wrapper builds a new staticStabilityProvider on every call, so its memory of past
    // credentials is always empty: an outage after a success is an error, not an extension.
    await start();
    const logger = recordingLogger();
    const provider = fromInstanceMetadata({ logger });
    await provider();
    emulators.current.setFaults({ credentials: { status: 500 } });
    await expect(provider()).rejects.toMatchObject({ statusCode: 500 });
    expect(logger.lines.filter((l) => l.level === "warn")).toEqual([]);
  });
});
