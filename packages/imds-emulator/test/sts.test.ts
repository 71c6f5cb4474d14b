/**
 * STS and the container-credentials endpoint proven against the real AWS SDK v3 providers:
 * fromTemporaryCredentials (AssumeRole), fromTokenFile (AssumeRoleWithWebIdentity), fromHttp and
 * fromContainerMetadata (container endpoint).
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  fromContainerMetadata,
  fromHttp,
  fromTemporaryCredentials,
  fromTokenFile,
} from "@aws-sdk/credential-providers";
import { describe, expect, it } from "vitest";
import { http, sdkEmulatorPerTest } from "./helpers.js";

const ROLE = "arn:aws:iam::123456789012:role/web";
const dir = mkdtempSync(join(tmpdir(), "imds-emulator-sts-"));

const { start } = sdkEmulatorPerTest();

/** A service-account token's shape: header.payload.signature (the emulator does not verify it). */
function jwt(claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${part({ alg: "RS256" })}.${part(claims)}.c2ln`;
}

function tokenFile(name: string, claims: Record<string, unknown>): string {
  const path = join(dir, name);
  writeFileSync(path, jwt(claims));
  return path;
}

const stsClient = (url: string) => ({ region: "us-east-1", endpoint: url });

describe("STS AssumeRole (fromTemporaryCredentials)", () => {
  it("answers the SDK's signed query-protocol call with credentials and records the parameters", async () => {
    const sts = await start();
    const creds = await fromTemporaryCredentials({
      params: { RoleArn: ROLE, RoleSessionName: "job", ExternalId: "tenant-7", DurationSeconds: 900 },
      masterCredentials: { accessKeyId: "AKIAEXAMPLEMASTER01", secretAccessKey: "master-secret" },
      clientConfig: stsClient(sts.url),
    })();
    expect(creds.accessKeyId).toMatch(/^ASIA[A-Z0-9]{16}$/);
    expect(sts.secretsIssued()).toEqual(expect.arrayContaining([creds.secretAccessKey, creds.sessionToken]));
    expect(creds.expiration!.getTime() - Date.now()).toBeGreaterThan(800_000);
    expect(creds.expiration!.getTime() - Date.now()).toBeLessThanOrEqual(900_000);
    expect(sts.stsCalls()).toEqual([
      {
        action: "AssumeRole",
        roleArn: ROLE,
        roleSessionName: "job",
        externalId: "tenant-7",
        durationSeconds: 900,
        status: 200,
        accessKeyId: creds.accessKeyId,
      },
    ]);
    expect(sts.stats.sts).toMatchObject({ assumeRole: 1, throttled: 0 });
  });

  it("an unsigned AssumeRole is refused (403), as STS refuses it", async () => {
    const sts = await start();
    const body =
      "Action=AssumeRole&Version=2011-06-15&RoleArn=" + encodeURIComponent(ROLE) + "&RoleSessionName=x1";
    const { request } = await import("node:http");
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(sts.url, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
      });
      req.on("response", (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.end(body);
    });
    expect(status).toBe(403);
    expect(sts.stats.sts.refused).toBe(1);
  });
});

describe("STS AssumeRoleWithWebIdentity (fromTokenFile)", () => {
  const claims = {
    iss: "https://oidc.eks.example",
    sub: "system:serviceaccount:team-a:worker",
    aud: "sts.amazonaws.com",
  };

  it("AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN: credentials for a trusted subject; the token's claims are recorded", async () => {
    const file = tokenFile("trusted", claims);
    const sts = await start(
      { sts: { roles: { [ROLE]: { subjects: [claims.sub] } } } },
      { AWS_WEB_IDENTITY_TOKEN_FILE: file, AWS_ROLE_ARN: ROLE, AWS_ROLE_SESSION_NAME: "pod-1" },
    );
    const creds = await fromTokenFile({ clientConfig: stsClient(sts.url) })();
    expect(creds.accessKeyId).toMatch(/^ASIA/);
    expect(sts.stsCalls()).toEqual([
      {
        action: "AssumeRoleWithWebIdentity",
        roleArn: ROLE,
        roleSessionName: "pod-1",
        issuer: claims.iss,
        subject: claims.sub,
        audience: claims.aud,
        tokenDigest: expect.stringMatching(/^[0-9a-f]{16}$/),
        status: 200,
        accessKeyId: creds.accessKeyId,
      },
    ]);
  });

  it("another subject, or a role that does not exist, is AccessDenied", async () => {
    const sts = await start({ sts: { roles: { [ROLE]: { subjects: [claims.sub] } } } });
    const other = tokenFile("other", { ...claims, sub: "system:serviceaccount:team-b:worker" });
    await expect(
      fromTokenFile({ webIdentityTokenFile: other, roleArn: ROLE, clientConfig: stsClient(sts.url) })(),
    ).rejects.toMatchObject({ name: "AccessDenied" });
    const trusted = tokenFile("trusted2", claims);
    await expect(
      fromTokenFile({
        webIdentityTokenFile: trusted,
        roleArn: "arn:aws:iam::123456789012:role/missing",
        clientConfig: stsClient(sts.url),
      })(),
    ).rejects.toMatchObject({ name: "AccessDenied" });
    expect(sts.stats.sts).toMatchObject({ assumeRoleWithWebIdentity: 0, refused: 2 });
  });

  it("throttle: `Throttling: Rate exceeded`; the SDK's STS client retries it (3 attempts) and then fails", async () => {
    const file = tokenFile("throttled", claims);
    const sts = await start({ faults: { sts: { throttle: true, count: 2 } } });
    const creds = await fromTokenFile({
      webIdentityTokenFile: file,
      roleArn: ROLE,
      clientConfig: stsClient(sts.url),
    })();
    expect(creds.accessKeyId).toMatch(/^ASIA/);
    expect(sts.stats.sts).toMatchObject({ throttled: 2, assumeRoleWithWebIdentity: 1 });
    sts.setFaults({ sts: { throttle: true } });
    await expect(
      fromTokenFile({ webIdentityTokenFile: file, roleArn: ROLE, clientConfig: stsClient(sts.url) })(),
    ).rejects.toMatchObject({ name: "Throttling", message: "Rate exceeded" });
    expect(sts.stats.sts.throttled).toBe(5);
  });

  it("forMs: throttled for a window from the first request (emulator clock), then answered", async () => {
    let now = Date.now();
    const file = tokenFile("window", claims);
    const sts = await start({ clock: { now: () => now }, faults: { sts: { throttle: true, forMs: 5000 } } });
    now += 60_000; // a herd that starts late: the window opens at its first request
    const fetch = () =>
      fromTokenFile({
        webIdentityTokenFile: file,
        roleArn: ROLE,
        clientConfig: { ...stsClient(sts.url), maxAttempts: 1 },
      })();
    await expect(fetch()).rejects.toMatchObject({ name: "Throttling" });
    now += 5000;
    await expect(fetch()).resolves.toMatchObject({ accessKeyId: expect.stringMatching(/^ASIA/) });
  });
});

describe("container credentials endpoint", () => {
  it("fromHttp with the full URI and a token file: the token is checked, a rotated token is accepted", async () => {
    const file = join(dir, "pod-identity-token");
    writeFileSync(file, "token-one");
    const server = await start({ containerToken: "token-one" });
    const env = {
      awsContainerCredentialsFullUri: `${server.url}/v1/credentials`,
      awsContainerAuthorizationTokenFile: file,
    };
    const first = await fromHttp(env)();
    expect(first.accessKeyId).toMatch(/^ASIA/);
    server.setContainerToken("token-two");
    await expect(fromHttp({ ...env, maxRetries: 0 })()).rejects.toThrow();
    writeFileSync(file, "token-two");
    expect((await fromHttp(env)()).accessKeyId).toBe(first.accessKeyId);
    expect(server.stats).toMatchObject({ containerFetches: 2, statuses: { 401: 1 } });
  });

  it("fromHttp with AWS_CONTAINER_AUTHORIZATION_TOKEN; fromContainerMetadata on a loopback full URI", async () => {
    const server = await start(
      { containerToken: "static-token" },
      { AWS_CONTAINER_CREDENTIALS_FULL_URI: "", AWS_CONTAINER_AUTHORIZATION_TOKEN: "static-token" },
    );
    const viaHttp = await fromHttp({ awsContainerCredentialsFullUri: `${server.url}/v1/credentials` })();
    expect(viaHttp.accessKeyId).toMatch(/^ASIA/);
    server.setContainerToken(undefined);
    process.env.AWS_CONTAINER_CREDENTIALS_FULL_URI = `${server.url}/v2/credentials/task-1`;
    const viaSmithy = await fromContainerMetadata()();
    expect(viaSmithy.accessKeyId).toMatch(/^ASIA/);
    // Each path is its own task: its own credentials.
    expect(viaSmithy.accessKeyId).not.toBe(viaHttp.accessKeyId);
  });

  it("the relative-URI route answers GET /v2/credentials/<id> like the ECS agent; faults apply", async () => {
    const server = await start({ faults: { container: { status: 500, count: 1 } } });
    expect((await http(`${server.url}/v2/credentials/abc`)).status).toBe(500);
    const res = await http(`${server.url}/v2/credentials/abc`);
    expect(res.status).toBe(200);
    expect(Object.keys(JSON.parse(res.body)).sort()).toEqual([
      "AccessKeyId",
      "Expiration",
      "RoleArn",
      "SecretAccessKey",
      "Token",
    ]);
  });
});
