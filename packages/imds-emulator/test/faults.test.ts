import { describe, expect, it } from "vitest";
import type { ImdsFaults } from "../src/index.js";
import { emulatorPerTest, http, testClock } from "./helpers.js";

const ROLE = "credcache-demo-role";
const CREDS = `/latest/meta-data/iam/security-credentials/${ROLE}`;
const ROLE_PATH = "/latest/meta-data/iam/security-credentials/";

const emulators = emulatorPerTest();
const start = emulators.start;

const putToken = (base: string) =>
  http(`${base}/latest/api/token`, {
    method: "PUT",
    headers: { "x-aws-ec2-metadata-token-ttl-seconds": "60" },
  });

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((r) => setTimeout(r, 5));
}

describe("status faults", () => {
  it.each([429, 500, 503])(
    "answers %i to the next `count` requests on the route, then recovers",
    async (status) => {
      const { url } = await start();
      emulators.current.setFaults({ credentials: { status, count: 2 } });
      expect((await http(`${url}${CREDS}`)).status).toBe(status);
      expect((await http(`${url}${CREDS}`)).status).toBe(status);
      expect((await http(`${url}${CREDS}`)).status).toBe(200);
      expect(emulators.current.stats).toMatchObject({
        faultsInjected: 2,
        credentialFetches: 1,
        statuses: { [status]: 2, 200: 1 },
      });
    },
  );

  it("hits only its own route; extended credentials share the credentials route", async () => {
    const { url } = await start();
    emulators.current.setFaults({ credentials: { status: 500 } });
    expect((await putToken(url)).status).toBe(200);
    expect((await http(`${url}${ROLE_PATH}`)).status).toBe(200);
    expect((await http(`${url}/latest/meta-data/iam/security-credentials-extended/${ROLE}`)).status).toBe(
      500,
    );
    expect((await http(`${url}${CREDS}`)).status).toBe(500);
  });

  it("on the token route, fails token PUTs", async () => {
    const { url } = await start({ faults: { token: { status: 404 } } });
    expect((await putToken(url)).status).toBe(404);
    expect(emulators.current.stats.tokensIssued).toBe(0);
  });

  it("`any` hits every path, and a route's own fault takes precedence", async () => {
    const { url } = await start();
    emulators.current.setFaults({ any: { status: 503 }, role: { status: 429 } });
    expect((await http(`${url}/latest/meta-data/instance-id`)).status).toBe(503);
    expect((await putToken(url)).status).toBe(503);
    expect((await http(`${url}${ROLE_PATH}`)).status).toBe(429);
  });

  it("setFaults(undefined) and setFaults({}) clear faults", async () => {
    const { url } = await start();
    emulators.current.setFaults({ credentials: { status: 500 } });
    emulators.current.setFaults(undefined);
    expect((await http(`${url}${CREDS}`)).status).toBe(200);
    emulators.current.setFaults({ credentials: { status: 500 } });
    emulators.current.setFaults({});
    expect((await http(`${url}${CREDS}`)).status).toBe(200);
  });

  it("copies the faults object: later edits by the caller change nothing", async () => {
    const { url } = await start();
    const faults: ImdsFaults = { credentials: { status: 500, count: 1 } };
    emulators.current.setFaults(faults);
    faults.credentials!.count = 100;
    expect((await http(`${url}${CREDS}`)).status).toBe(500);
    expect((await http(`${url}${CREDS}`)).status).toBe(200);
  });
});

describe("probability", () => {
  it("1 hits every request, 0 none", async () => {
    const { url } = await start();
    emulators.current.setFaults({ credentials: { status: 500, probability: 1 } });
    for (let i = 0; i < 5; i++) expect((await http(`${url}${CREDS}`)).status).toBe(500);
    emulators.current.setFaults({ credentials: { status: 500, probability: 0 } });
    for (let i = 0; i < 5; i++) expect((await http(`${url}${CREDS}`)).status).toBe(200);
  });

  it("0.5 hits some requests and spares others", async () => {
    const { url } = await start();
    emulators.current.setFaults({ credentials: { status: 503, probability: 0.5 } });
    const statuses = new Set<number>();
    for (let i = 0; i < 60; i++) statuses.add((await http(`${url}${CREDS}`)).status);
    // Missing one of the two outcomes in 60 fair draws has probability 2^-59.
    expect([...statuses].sort()).toEqual([200, 503]);
  });
});

describe("connection faults", () => {
  it("hang never answers; the client has to give up", async () => {
    const { url } = await start({ faults: { credentials: { hang: true } } });
    await expect(http(`${url}${CREDS}`, { timeoutMs: 100 })).rejects.toMatchObject({ code: "TIMEOUT" });
    expect(emulators.current.stats.hangs).toBe(1);
    expect(emulators.current.stats.statuses).toEqual({});
  });

  it("close() ends a hung request instead of waiting for it", async () => {
    const { url } = await start({ faults: { token: { hang: true } } });
    const pending = putToken(url);
    await until(() => emulators.current.stats.hangs === 1);
    await emulators.current.close();
    await expect(pending).rejects.toMatchObject({ code: "ECONNRESET" });
  });

  it("reset destroys the connection", async () => {
    const { url } = await start({ faults: { role: { reset: true, count: 1 } } });
    await expect(http(`${url}${ROLE_PATH}`)).rejects.toMatchObject({ code: "ECONNRESET" });
    expect((await http(`${url}${ROLE_PATH}`)).body).toBe(ROLE);
    expect(emulators.current.stats.resets).toBe(1);
  });

  it("latencyMs delays the answer: a client that waits less gets nothing, one that waits gets it", async () => {
    const { url } = await start({ faults: { credentials: { latencyMs: 400 } } });
    await expect(http(`${url}${CREDS}`, { timeoutMs: 20 })).rejects.toMatchObject({ code: "TIMEOUT" });
    expect((await http(`${url}${CREDS}`)).status).toBe(200);
  });

  it("latencyMs combines with a status", async () => {
    const { url } = await start({ faults: { credentials: { latencyMs: 1, status: 503 } } });
    expect((await http(`${url}${CREDS}`)).status).toBe(503);
  });
});

describe("document faults", () => {
  it("expired serves the current set with an Expiration in the past", async () => {
    const clock = testClock();
    const { url } = await start({ clock, faults: { credentials: { expired: true, count: 1 } } });
    const doc = JSON.parse((await http(`${url}${CREDS}`)).body);
    expect(doc.AccessKeyId).toBe(emulators.current.currentCredentials().accessKeyId);
    expect(Date.parse(doc.Expiration)).toBeLessThan(clock.now());
    const next = JSON.parse((await http(`${url}${CREDS}`)).body);
    expect(Date.parse(next.Expiration)).toBeGreaterThan(clock.now());
    expect(emulators.current.stats).toMatchObject({ credentialFetches: 2, credentialSets: 1 });
  });

  it("malformed answers 200 with a body that is not JSON and holds no secret", async () => {
    const { url } = await start({ faults: { credentials: { malformed: true } } });
    const res = await http(`${url}${CREDS}`);
    expect(res.status).toBe(200);
    expect(() => JSON.parse(res.body)).toThrow(SyntaxError);
    expect(emulators.current.stats.credentialFetches).toBe(0);
    expect(emulators.current.secretsIssued()).toEqual([]);
  });
});

describe("validation", () => {
  it.each<[string, unknown, RegExp]>([
    ["two effects", { credentials: { hang: true, reset: true } }, /pick one effect/],
    [
      "count and probability",
      { credentials: { status: 500, count: 1, probability: 0.5 } },
      /count and probability/,
    ],
    ["expired off the credentials route", { token: { expired: true } }, /credentials route only/],
    ["unknown route", { tokens: { status: 500 } }, /Unknown fault route "tokens"/],
    ["unknown option", { role: { status: 500, delay: 5 } }, /delay is not a fault option/],
    ["a fault with no effect", { role: { count: 2 } }, /does nothing/],
    ["a success status", { role: { status: 200 } }, /400-599/],
    ["probability above 1", { role: { status: 500, probability: 2 } }, /between 0 and 1/],
    ["negative latency", { role: { latencyMs: -1 } }, /latencyMs/],
  ])("rejects %s", async (_name, faults, message) => {
    await start();
    const before = { credentials: { status: 503 } } as const;
    emulators.current.setFaults(before);
    expect(() => emulators.current.setFaults(faults as ImdsFaults)).toThrow(message);
    // A rejected call leaves the faults in force unchanged.
    expect((await http(`${emulators.current.url}${CREDS}`)).status).toBe(503);
  });
});
