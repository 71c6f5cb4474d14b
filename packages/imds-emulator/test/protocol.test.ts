import { describe, expect, it } from "vitest";
import { startImdsEmulator } from "../src/index.js";
import { emulatorPerTest, getToken, http, testClock } from "./helpers.js";

const CREDS = "/latest/meta-data/iam/security-credentials/";
const EXTENDED = "/latest/meta-data/iam/security-credentials-extended/";
const ROLE = "credcache-demo-role";
const EC2_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;
const HOUR = 3_600_000;
const MINUTE = 60_000;

const emulators = emulatorPerTest();
const start = emulators.start;

const putToken = (base: string, headers: Record<string, string>) =>
  http(`${base}/latest/api/token`, { method: "PUT", headers });

describe("token PUT", () => {
  it("issues a token for a TTL from 1 to 21600 and echoes the TTL", async () => {
    const { url } = await start();
    for (const ttl of ["1", "21600"]) {
      const res = await putToken(url, { "x-aws-ec2-metadata-token-ttl-seconds": ttl });
      expect(res.status).toBe(200);
      expect(res.body.length).toBeGreaterThan(20);
      expect(res.headers["x-aws-ec2-metadata-token-ttl-seconds"]).toBe(ttl);
    }
    expect(emulators.current.stats.tokensIssued).toBe(2);
  });

  it("answers 400 to a missing, zero, too large or non-numeric TTL", async () => {
    const { url } = await start();
    expect((await putToken(url, {})).status).toBe(400);
    for (const ttl of ["0", "21601", "abc", "-5", "1.5"]) {
      const res = await putToken(url, { "x-aws-ec2-metadata-token-ttl-seconds": ttl });
      expect(res.status, `ttl ${ttl}`).toBe(400);
    }
    expect(emulators.current.stats.tokensIssued).toBe(0);
    expect(emulators.current.stats.statuses[400]).toBe(6);
  });

  it("answers 403 to a token request that went through a proxy (X-Forwarded-For)", async () => {
    const { url } = await start();
    const res = await putToken(url, {
      "x-aws-ec2-metadata-token-ttl-seconds": "60",
      "x-forwarded-for": "203.0.113.7",
    });
    expect(res.status).toBe(403);
    expect(emulators.current.stats.tokensIssued).toBe(0);
  });

  it("answers 405 to a GET on the token path", async () => {
    const { url } = await start();
    expect((await http(`${url}/latest/api/token`)).status).toBe(405);
  });
});

describe("token checks on reads", () => {
  it("in imdsv2Only mode refuses a missing, unknown or expired token with 401", async () => {
    const clock = testClock();
    const { url } = await start({ imdsv2Only: true, clock });
    expect((await http(`${url}${CREDS}`)).status).toBe(401);
    expect((await http(`${url}${CREDS}`, { headers: { "x-aws-ec2-metadata-token": "nope" } })).status).toBe(
      401,
    );

    const token = await getToken(url, 10);
    const withToken = { headers: { "x-aws-ec2-metadata-token": token } };
    clock.advance(9_999);
    expect(await http(`${url}${CREDS}`, withToken)).toMatchObject({ status: 200, body: ROLE });
    clock.advance(1);
    expect((await http(`${url}${CREDS}`, withToken)).status).toBe(401);
  });

  it("by default answers IMDSv1 reads without a token but refuses a present, invalid one", async () => {
    const clock = testClock();
    const { url } = await start({ clock });
    expect(await http(`${url}${CREDS}`)).toMatchObject({ status: 200, body: ROLE });
    expect((await http(`${url}${CREDS}`, { headers: { "x-aws-ec2-metadata-token": "nope" } })).status).toBe(
      401,
    );

    const token = await getToken(url, 1);
    clock.advance(1_000);
    expect((await http(`${url}${CREDS}`, { headers: { "x-aws-ec2-metadata-token": token } })).status).toBe(
      401,
    );
    expect(emulators.current.stats.reads).toEqual({ withToken: 2, withoutToken: 1 });
  });
});

describe("metadata documents", () => {
  it("serves the credentials document with EC2's fields and time format", async () => {
    const clock = testClock();
    const { url } = await start({ clock });
    const res = await http(`${url}${CREDS}${ROLE}`);
    expect(res.status).toBe(200);
    const doc = JSON.parse(res.body);
    expect(Object.keys(doc).sort()).toEqual(
      ["AccessKeyId", "Code", "Expiration", "LastUpdated", "SecretAccessKey", "Token", "Type"].sort(),
    );
    expect(doc).toMatchObject({ Code: "Success", Type: "AWS-HMAC" });
    expect(doc.AccessKeyId).toMatch(/^ASIA[A-Z0-9]{16}$/);
    expect(doc.SecretAccessKey).toMatch(/^[A-Za-z0-9+/]{40}$/);
    expect(doc.Token.length).toBeGreaterThan(100);
    expect(doc.Expiration).toMatch(EC2_TIME);
    expect(doc.LastUpdated).toBe("2026-11-26T12:00:00Z");
    expect(doc.Expiration).toBe("2026-11-26T18:00:00Z");
  });

  it("serves the extended document with AccountId, and 404 for an unknown role on both", async () => {
    const { url } = await start({ accountId: "210987654321", role: "worker" });
    const extended = JSON.parse((await http(`${url}${EXTENDED}worker`)).body);
    expect(extended.AccountId).toBe("210987654321");
    expect(extended.AccessKeyId).toBe(emulators.current.currentCredentials().accessKeyId);
    expect(await http(`${url}${EXTENDED}`)).toMatchObject({ status: 200, body: "worker" });
    expect((await http(`${url}${CREDS}credcache-demo-role`)).status).toBe(404);
    expect((await http(`${url}${EXTENDED}other`)).status).toBe(404);
    expect(emulators.current.stats.requests).toMatchObject({ credentials: 1, extended: 2, role: 1 });
  });

  it("serves iam/info, instance-id and placement/region, and 404 for unknown paths", async () => {
    const { url } = await start({ instanceId: "i-00000000000000042", region: "eu-west-3", role: "r1" });
    const info = JSON.parse((await http(`${url}/latest/meta-data/iam/info`)).body);
    expect(info).toMatchObject({
      Code: "Success",
      InstanceProfileArn: "arn:aws:iam::123456789012:instance-profile/r1",
    });
    expect(info.InstanceProfileId).toMatch(/^AIPA[A-Z0-9]{17}$/);
    expect(info.LastUpdated).toMatch(EC2_TIME);
    expect((await http(`${url}/latest/meta-data/instance-id`)).body).toBe("i-00000000000000042");
    expect((await http(`${url}/latest/meta-data/placement/region`)).body).toBe("eu-west-3");
    expect((await http(`${url}/latest/meta-data/nope`)).status).toBe(404);
    expect((await http(`${url}/latest/user-data`)).status).toBe(404);
  });
});

describe("rotation", () => {
  it("serves a new set from leadMs before the old one expires, with its own expiry", async () => {
    const clock = testClock();
    const t0 = clock.now();
    const { url } = await start({ clock });
    const read = async () => JSON.parse((await http(`${url}${CREDS}${ROLE}`)).body);

    const a = await read();
    clock.set(t0 + 6 * HOUR - 5 * MINUTE - 1);
    expect((await read()).AccessKeyId).toBe(a.AccessKeyId);

    clock.set(t0 + 6 * HOUR - 5 * MINUTE);
    const b = await read();
    expect(b.AccessKeyId).not.toBe(a.AccessKeyId);
    expect(b.SecretAccessKey).not.toBe(a.SecretAccessKey);
    expect(b.Token).not.toBe(a.Token);
    expect(b.LastUpdated).toBe("2026-11-26T17:55:00Z");
    expect(b.Expiration).toBe("2026-11-26T23:55:00Z");
    // The old set is still valid for 5 minutes: clients holding it keep working.
    expect(Date.parse(a.Expiration)).toBeGreaterThan(clock.now());

    const rotated = emulators.current.rotate();
    const c = await read();
    expect(c.AccessKeyId).toBe(rotated.accessKeyId);
    expect(new Set([a.AccessKeyId, b.AccessKeyId, c.AccessKeyId]).size).toBe(3);
    expect(emulators.current.stats).toMatchObject({ credentialFetches: 4, credentialSets: 3 });
    expect(emulators.current.secretsIssued().sort()).toEqual(
      [a.SecretAccessKey, a.Token, b.SecretAccessKey, b.Token, c.SecretAccessKey, c.Token].sort(),
    );
  });

  it("honours lifetimeMs and leadMs", async () => {
    const clock = testClock();
    await start({ clock, lifetimeMs: 60_000, leadMs: 10_000 });
    const first = emulators.current.currentCredentials();
    expect(first.expiration.getTime() - first.lastUpdated.getTime()).toBe(60_000);
    clock.advance(49_999);
    expect(emulators.current.currentCredentials().accessKeyId).toBe(first.accessKeyId);
    clock.advance(1);
    expect(emulators.current.currentCredentials().accessKeyId).not.toBe(first.accessKeyId);
  });

  it("jumps straight to one new set when the clock leaps past several lifetimes", async () => {
    const clock = testClock();
    const { url } = await start({ clock });
    await http(`${url}${CREDS}${ROLE}`);
    clock.advance(100 * HOUR);
    const doc = JSON.parse((await http(`${url}${CREDS}${ROLE}`)).body);
    expect(Date.parse(doc.Expiration)).toBe(clock.now() + 6 * HOUR);
    expect(emulators.current.stats.credentialSets).toBe(2);
  });
});

describe("stats", () => {
  it("counts requests per route and status, and resetStats zeroes them but keeps secretsIssued", async () => {
    const { url } = await start();
    const token = await getToken(url);
    const h = { headers: { "x-aws-ec2-metadata-token": token } };
    await http(`${url}${CREDS}`, h);
    await http(`${url}${CREDS}${ROLE}`, h);
    await http(`${url}${CREDS}${ROLE}`);
    await http(`${url}${EXTENDED}${ROLE}`, h);
    await http(`${url}/latest/meta-data/instance-id`);
    await http(`${url}/nope`);
    const before = emulators.current.stats;
    expect(before).toEqual({
      requests: {
        total: 7,
        token: 1,
        role: 1,
        credentials: 2,
        extended: 1,
        sts: 0,
        container: 0,
        sso: 0,
        other: 2,
      },
      statuses: { 200: 6, 404: 1 },
      reads: { withToken: 3, withoutToken: 3 },
      tokensIssued: 1,
      credentialFetches: 3,
      credentialSets: 1,
      faultsInjected: 0,
      hangs: 0,
      resets: 0,
      sts: { assumeRole: 0, assumeRoleWithWebIdentity: 0, throttled: 0, refused: 0 },
      containerFetches: 0,
      ssoFetches: 0,
    });

    await http(`${url}/nope`);
    expect(before.requests.total).toBe(7); // a snapshot, not a live view
    emulators.current.resetStats();
    expect(emulators.current.stats.requests.total).toBe(0);
    expect(emulators.current.stats.credentialSets).toBe(0);
    expect(emulators.current.secretsIssued()).toHaveLength(2);
  });
});

describe("options", () => {
  it("rejects options that make no sense, saying what to fix", async () => {
    await expect(startImdsEmulator({ leadMs: HOUR, lifetimeMs: HOUR })).rejects.toThrow(/leadMs/);
    await expect(startImdsEmulator({ accountId: "12345" })).rejects.toThrow(/12 digits/);
    await expect(startImdsEmulator({ role: "has space" })).rejects.toThrow(/role/);
    await expect(startImdsEmulator({ port: 70_000 })).rejects.toThrow(/port/);
    await expect(startImdsEmulator({ faults: { token: { expired: true } } })).rejects.toThrow(/credentials/);
  });

  it("listens on the requested port and reports it in url", async () => {
    const probe = await start();
    const port = probe.port;
    await probe.close();
    const again = await start({ port });
    expect(again.port).toBe(port);
    expect(again.url).toBe(`http://127.0.0.1:${port}`);
  });

  it("close() is idempotent", async () => {
    const emulator = await start();
    await Promise.all([emulator.close(), emulator.close()]);
    await expect(http(`${emulator.url}${CREDS}`)).rejects.toMatchObject({ code: "ECONNREFUSED" });
  });
});
