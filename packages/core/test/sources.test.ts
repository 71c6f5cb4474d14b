/**
 * Every source of the SDK's default chain, resolved through the cached chain and the web
 * identity presets, against the real SDK providers and the emulator (IMDS, STS, container
 * endpoint). Cross-process claims run real child processes over a real file store.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type ImdsEmulator, startImdsEmulator } from "@credcache/imds-emulator";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { outputOf } from "../../../test/support/childOutput.mjs";
import {
  containerMetadataKey,
  fromCachedNodeProviderChain,
  fromCachedTokenFile,
  fromCachedWebIdentity,
  iniKey,
  instanceMetadataKey,
  nodeProviderChainSource,
  webIdentityKey,
} from "../src/index.js";
import { issuedSecrets, scriptedStore } from "./harness.js";

const ROLE = "arn:aws:iam::123456789012:role/irsa";
const SUB_A = "system:serviceaccount:team-a:worker";
const SUB_B = "system:serviceaccount:team-b:worker";
const CHILD = fileURLToPath(new URL("./servers/chainChild.mjs", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "credcache-sources-"));

/** Every variable the SDK's default chain reads; each test sets only its own. */
const CHAIN_ENV = [
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
  "AWS_PROFILE",
  "AWS_CONFIG_FILE",
  "AWS_SHARED_CREDENTIALS_FILE",
  "AWS_WEB_IDENTITY_TOKEN_FILE",
  "AWS_ROLE_ARN",
  "AWS_ROLE_SESSION_NAME",
  "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
  "AWS_CONTAINER_CREDENTIALS_FULL_URI",
  "AWS_CONTAINER_AUTHORIZATION_TOKEN",
  "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
  "AWS_EC2_METADATA_DISABLED",
  "AWS_EC2_METADATA_SERVICE_ENDPOINT",
  "AWS_ENDPOINT_URL",
  "AWS_ENDPOINT_URL_STS",
  "AWS_REGION",
  "AWS_ENDPOINT_URL_SSO",
  "HOME",
];

let emulator: ImdsEmulator;
beforeAll(async () => {
  emulator = await startImdsEmulator({
    sts: { roles: { [ROLE]: { subjects: [SUB_A, SUB_B] }, "arn:aws:iam::123456789012:role/deploy": {} } },
  });
});
afterAll(async () => {
  for (const secret of emulator.secretsIssued()) issuedSecrets.add(secret);
  await emulator.close();
});
afterEach(() => {
  vi.unstubAllEnvs();
  emulator.resetStats();
  emulator.setFaults({});
});

let files = 0;
/** A fresh directory for one test's files. */
function fresh(): string {
  const path = join(dir, `t${++files}`);
  mkdirSync(path, { mode: 0o700 });
  return path;
}

/** Sets the chain's environment to exactly `env` (plus no config files, the emulator as IMDS and STS). */
function useEnv(env: Record<string, string>): Record<string, string> {
  const base = fresh();
  const full = {
    AWS_CONFIG_FILE: join(base, "no-config"),
    AWS_SHARED_CREDENTIALS_FILE: join(base, "no-credentials"),
    AWS_EC2_METADATA_SERVICE_ENDPOINT: emulator.url,
    AWS_ENDPOINT_URL_STS: emulator.url,
    AWS_REGION: "us-east-1",
    ...env,
  };
  for (const name of CHAIN_ENV) {
    if (full[name as keyof typeof full] === undefined) {
      vi.stubEnv(name, "");
      delete process.env[name];
    } else vi.stubEnv(name, full[name as keyof typeof full]);
  }
  return full;
}

function jwt(claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${part({ alg: "RS256" })}.${part({ iss: "https://oidc.eks.example", aud: "sts.amazonaws.com", ...claims })}.${Math.random().toString(36).slice(2)}`;
}

function writeToken(sub: string): string {
  const path = join(fresh(), "token");
  writeFileSync(path, jwt({ sub }));
  return path;
}

function chain(store: ReturnType<typeof scriptedStore>["store"]) {
  return fromCachedNodeProviderChain({ cache: store, proactiveRefresh: false, timeout: 5_000 });
}

describe("fromCachedTokenFile (the SDK's fromTokenFile against the emulator's STS)", () => {
  it("two providers with the same role and subject share one AssumeRoleWithWebIdentity; another subject gets its own", async () => {
    const { store } = scriptedStore(Date);
    const tokenA = writeToken(SUB_A);
    const tokenB = writeToken(SUB_B);
    const init = {
      roleArn: ROLE,
      clientConfig: { region: "us-east-1", endpoint: emulator.url },
      proactiveRefresh: false,
    };
    const a1 = await fromCachedTokenFile({ ...init, cache: store, webIdentityTokenFile: tokenA })();
    const a2 = await fromCachedTokenFile({ ...init, cache: store, webIdentityTokenFile: tokenA })();
    expect(a2.accessKeyId).toBe(a1.accessKeyId);
    const b = await fromCachedTokenFile({ ...init, cache: store, webIdentityTokenFile: tokenB })();
    expect(b.accessKeyId, "team-b never gets team-a's set").not.toBe(a1.accessKeyId);
    expect(emulator.stsCalls().map((call) => call.subject)).toEqual([SUB_A, SUB_B]);
    expect(emulator.stsCalls()[0]).toMatchObject({ roleSessionName: "credcache", status: 200 });
    expect([...store.data.keys()].every((key) => key.startsWith(`web-identity:${ROLE}:credcache:`))).toBe(
      true,
    );
    // The stored record never holds the token.
    for (const { value } of store.data.values()) expect(value).not.toContain(".ey");
  });

  it("a rotated token file: the key stays, the next fetch sends the current token", async () => {
    const { store } = scriptedStore(Date);
    const tokenFile = writeToken(SUB_A);
    const init = {
      roleArn: ROLE,
      webIdentityTokenFile: tokenFile,
      clientConfig: { region: "us-east-1", endpoint: emulator.url },
    };
    const provider = fromCachedTokenFile({ ...init, cache: store, proactiveRefresh: false });
    const first = await provider();
    const keyBefore = [...store.data.keys()];
    writeFileSync(tokenFile, jwt({ sub: SUB_A })); // Kubernetes rotated it: same claims, new signature
    const fresh = fromCachedTokenFile({ ...init, cache: store, proactiveRefresh: false });
    expect((await fresh()).accessKeyId, "the new token's process finds the set").toBe(first.accessKeyId);
    const second = await provider({ forceRefresh: true });
    expect(second.accessKeyId).not.toBe(first.accessKeyId);
    const sent = emulator.stsCalls().map((call) => call.tokenDigest);
    expect(sent).toHaveLength(2);
    expect(sent[1], "the fetch read the rotated token").toBe(
      createHash("sha256").update(readFileSync(tokenFile, "utf8")).digest("hex").slice(0, 16),
    );
    expect(sent[1]).not.toBe(sent[0]);
    expect([...store.data.keys()]).toEqual(keyBefore);
  });

  it("throttled STS: the SDK's retries ride out two Rate exceeded answers", async () => {
    const { store } = scriptedStore(Date);
    emulator.setFaults({ sts: { throttle: true, count: 2 } });
    const identity = await fromCachedTokenFile({
      roleArn: ROLE,
      webIdentityTokenFile: writeToken(SUB_A),
      clientConfig: { region: "us-east-1", endpoint: emulator.url },
      cache: store,
      proactiveRefresh: false,
    })();
    expect(identity.accessKeyId).toMatch(/^ASIA/);
    expect(emulator.stats.sts).toMatchObject({ throttled: 2, assumeRoleWithWebIdentity: 1 });
  });

  it("fromCachedWebIdentity keys by the token's claims, never the token", async () => {
    const { store } = scriptedStore(Date);
    const token = jwt({ sub: SUB_A });
    const init = {
      roleArn: ROLE,
      clientConfig: { region: "us-east-1", endpoint: emulator.url },
      cache: store,
      proactiveRefresh: false,
    };
    const first = await fromCachedWebIdentity({ ...init, webIdentityToken: token })();
    const again = await fromCachedWebIdentity({ ...init, webIdentityToken: jwt({ sub: SUB_A }) })();
    expect(again.accessKeyId).toBe(first.accessKeyId);
    const key = [...store.data.keys()][0]!;
    expect(key).toBe(webIdentityKey({ roleArn: ROLE }, token, { clientConfig: init.clientConfig }));
    expect(key).not.toContain(token.split(".")[1]!);
  });
});

describe("webIdentityKey: one input differs, another key", () => {
  it("role, session, policy, policy ARNs, duration, provider, region, endpoint, iss, sub, aud, host scope", () => {
    const token = (claims: Record<string, unknown>) => jwt(claims);
    const t = token({ sub: SUB_A });
    const env = {};
    const keys = [
      webIdentityKey({ roleArn: ROLE }, t, { env }),
      webIdentityKey({ roleArn: `${ROLE}2` }, t, { env }),
      webIdentityKey({ roleArn: ROLE, roleSessionName: "s" }, t, { env }),
      webIdentityKey({ roleArn: ROLE, policy: "{}" }, t, { env }),
      webIdentityKey({ roleArn: ROLE, policyArns: [{ arn: "arn:aws:iam::aws:policy/ReadOnlyAccess" }] }, t, {
        env,
      }),
      webIdentityKey({ roleArn: ROLE, durationSeconds: 900 }, t, { env }),
      webIdentityKey({ roleArn: ROLE, providerId: "graph.facebook.com" }, t, { env }),
      webIdentityKey({ roleArn: ROLE }, t, { env: { AWS_REGION: "eu-west-1" } }),
      webIdentityKey({ roleArn: ROLE }, t, { env: { AWS_ENDPOINT_URL_STS: "https://sts.example" } }),
      webIdentityKey({ roleArn: ROLE }, token({ sub: SUB_A, iss: "https://other" }), { env }),
      webIdentityKey({ roleArn: ROLE }, token({ sub: SUB_B }), { env }),
      webIdentityKey({ roleArn: ROLE }, token({ sub: SUB_A, aud: "other" }), { env }),
      webIdentityKey({ roleArn: ROLE }, t, { env, scopeToHost: true, host: "hostname:a" }),
      webIdentityKey({ roleArn: ROLE }, t, { env, scopeToHost: true, host: "hostname:b" }),
      webIdentityKey({ roleArn: ROLE }, "opaque-one", { env }),
      webIdentityKey({ roleArn: ROLE }, "opaque-two", { env }),
    ];
    expect(new Set(keys).size).toBe(keys.length);
    // Not host-scoped by default: the same role and subject on two hosts share the key.
    expect(webIdentityKey({ roleArn: ROLE }, t, { env, host: "hostname:a" })).toBe(
      webIdentityKey({ roleArn: ROLE }, t, { env, host: "hostname:b" }),
    );
    for (const key of keys) expect(key).not.toContain("opaque");
  });
});

describe("fromCachedNodeProviderChain: the SDK chain's source, worked out before fetching", () => {
  it("env: static keys pass through and are never stored", async () => {
    useEnv({ AWS_ACCESS_KEY_ID: "AKIAEXAMPLEENV00001", AWS_SECRET_ACCESS_KEY: "env-secret-fixture" });
    const { store } = scriptedStore(Date);
    const identity = await chain(store)();
    expect(identity.accessKeyId).toBe("AKIAEXAMPLEENV00001");
    expect(nodeProviderChainSource()).toMatchObject({ source: "env", key: undefined });
    expect(store.data.size).toBe(0);
  });

  it("ini static, and AWS_PROFILE wins over env keys (as in the SDK)", async () => {
    const base = fresh();
    const config = join(base, "config");
    writeFileSync(
      config,
      "[profile dev]\naws_access_key_id = AKIAEXAMPLEINI00001\naws_secret_access_key = ini-secret-fixture\n",
    );
    useEnv({
      AWS_CONFIG_FILE: config,
      AWS_PROFILE: "dev",
      AWS_ACCESS_KEY_ID: "AKIAEXAMPLEENV00001",
      AWS_SECRET_ACCESS_KEY: "x",
    });
    const { store } = scriptedStore(Date);
    expect((await chain(store)()).accessKeyId).toBe("AKIAEXAMPLEINI00001");
    expect(nodeProviderChainSource()).toMatchObject({ source: "profile", key: iniKey("dev") });
  });

  it("ini assume-role: one STS AssumeRole, cached under the profile's key; another role, another entry", async () => {
    const base = fresh();
    const config = join(base, "config");
    const text = (role: string) =>
      `[profile base]\naws_access_key_id = AKIAEXAMPLEBASE0001\naws_secret_access_key = base-secret-fixture\n` +
      `[profile deploy]\nrole_arn = ${role}\nsource_profile = base\nrole_session_name = deploy\n`;
    writeFileSync(config, text("arn:aws:iam::123456789012:role/deploy"));
    useEnv({ AWS_CONFIG_FILE: config, AWS_PROFILE: "deploy" });
    const { store } = scriptedStore(Date);
    const first = await chain(store)();
    const again = await chain(store)();
    expect(again.accessKeyId).toBe(first.accessKeyId);
    expect(emulator.stsCalls()).toMatchObject([
      { action: "AssumeRole", roleArn: "arn:aws:iam::123456789012:role/deploy", roleSessionName: "deploy" },
    ]);
    writeFileSync(config, text(ROLE));
    await expect(chain(store)()).resolves.toMatchObject({
      accessKeyId: expect.not.stringMatching(first.accessKeyId),
    });
    expect(store.data.size).toBe(2);
  });

  it("credential_process: run once, cached under the profile's key", async () => {
    const base = fresh();
    const program = join(base, "creds.sh");
    const counter = join(base, "runs");
    writeFileSync(
      program,
      `#!/bin/sh\necho run >> ${counter}\necho '{"Version":1,"AccessKeyId":"ASIAEXAMPLEPROC0001","SecretAccessKey":"proc-secret-fixture","SessionToken":"proc-token-fixture","Expiration":"${new Date(Date.now() + 3_600_000).toISOString()}"}'\n`,
    );
    chmodSync(program, 0o700);
    const config = join(base, "config");
    writeFileSync(config, `[default]\ncredential_process = ${program}\n`);
    useEnv({ AWS_CONFIG_FILE: config });
    issuedSecrets.add("proc-secret-fixture");
    const { store } = scriptedStore(Date);
    expect((await chain(store)()).accessKeyId).toBe("ASIAEXAMPLEPROC0001");
    expect((await chain(store)()).accessKeyId).toBe("ASIAEXAMPLEPROC0001");
    expect(readFileSync(counter, "utf8").trim().split("\n")).toHaveLength(1);
    expect([...store.data.keys()]).toEqual([iniKey("default")]);
  });

  it("SSO profile with a cached SSO token: one GetRoleCredentials from the (emulated) portal, cached under the profile's key", async () => {
    const home = fresh();
    mkdirSync(join(home, ".aws", "sso", "cache"), { recursive: true });
    const config = join(home, ".aws", "config");
    writeFileSync(
      config,
      "[profile sso]\nsso_session = corp\nsso_account_id = 123456789012\nsso_role_name = dev\n[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = eu-west-1\nsso_registration_scopes = sso:account:access\n",
    );
    // What `aws sso login` leaves: the token cached under the SHA-1 of the session name.
    const cacheFile = createHash("sha1").update("corp").digest("hex");
    writeFileSync(
      join(home, ".aws", "sso", "cache", `${cacheFile}.json`),
      JSON.stringify({
        startUrl: "https://corp.awsapps.com/start",
        region: "eu-west-1",
        accessToken: "sso-access-token-fixture",
        expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
      }),
    );
    issuedSecrets.add("sso-access-token-fixture");
    useEnv({ HOME: home, AWS_CONFIG_FILE: config, AWS_PROFILE: "sso", AWS_ENDPOINT_URL_SSO: emulator.url });
    const { store } = scriptedStore(Date);
    const first = await chain(store)();
    expect((await chain(store)()).accessKeyId).toBe(first.accessKeyId);
    expect(emulator.stats.ssoFetches).toBe(1);
    expect([...store.data.keys()]).toEqual([iniKey("sso")]);
  });

  it("SSO profile: picked as the profile source (the ini link) and keyed by the profile, its sso-session and the host", () => {
    const base = fresh();
    const config = join(base, "config");
    writeFileSync(
      config,
      "[profile sso]\nsso_session = corp\nsso_account_id = 123456789012\nsso_role_name = dev\n[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = eu-west-1\n",
    );
    useEnv({ AWS_CONFIG_FILE: config, AWS_PROFILE: "sso" });
    expect(nodeProviderChainSource()).toMatchObject({ source: "profile", key: iniKey("sso") });
  });

  it("a profile with only a region falls through to the next link, as in the SDK", () => {
    const base = fresh();
    const config = join(base, "config");
    writeFileSync(config, "[default]\nregion = eu-west-1\n");
    useEnv({ AWS_CONFIG_FILE: config });
    expect(nodeProviderChainSource().source).toBe("imds");
    // An incomplete source (role_arn without source_profile): the SDK's own chain, under a key naming all it reads.
    writeFileSync(config, "[default]\nrole_arn = arn:aws:iam::123456789012:role/x\n");
    expect(nodeProviderChainSource().key).toMatch(/^chain:default:[0-9a-f]{32}$/);
  });

  it("web identity (IRSA): one AssumeRoleWithWebIdentity; team-b's pod gets its own set", async () => {
    const { store } = scriptedStore(Date);
    useEnv({ AWS_WEB_IDENTITY_TOKEN_FILE: writeToken(SUB_A), AWS_ROLE_ARN: ROLE });
    const a = await chain(store)();
    expect((await chain(store)()).accessKeyId).toBe(a.accessKeyId);
    expect(nodeProviderChainSource().source).toBe("web-identity");
    useEnv({ AWS_WEB_IDENTITY_TOKEN_FILE: writeToken(SUB_B), AWS_ROLE_ARN: ROLE });
    expect((await chain(store)()).accessKeyId).not.toBe(a.accessKeyId);
    expect(emulator.stats.sts.assumeRoleWithWebIdentity).toBe(2);
  });

  it("container full URI with a token file: one fetch; another token's pod gets its own set", async () => {
    const { store } = scriptedStore(Date);
    const tokenFile = join(fresh(), "pod-identity-token");
    writeFileSync(tokenFile, jwt({ sub: SUB_A }));
    emulator.setContainerToken(undefined);
    const env = {
      AWS_CONTAINER_CREDENTIALS_FULL_URI: `${emulator.url}/v1/credentials`,
      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: tokenFile,
    };
    useEnv(env);
    const a = await chain(store)();
    expect((await chain(store)()).accessKeyId).toBe(a.accessKeyId);
    expect(emulator.stats.containerFetches).toBe(1);
    expect([...store.data.keys()]).toEqual([containerMetadataKey({ env })]);
    writeFileSync(tokenFile, jwt({ sub: SUB_B }));
    await chain(store)();
    expect(emulator.stats.containerFetches, "a token naming another subject is another key").toBe(2);
  });

  it("IMDS: one fetch per host, under the host's key", async () => {
    const { store } = scriptedStore(Date);
    useEnv({});
    const a = await chain(store)();
    expect(a.accessKeyId).toBe(emulator.currentCredentials().accessKeyId);
    await chain(store)();
    expect(emulator.stats.credentialFetches).toBe(1);
    expect([...store.data.keys()]).toEqual([instanceMetadataKey()]);
  });
});

describe("the source worked out before fetching is the one the SDK's own chain uses", () => {
  /** Which emulator route served the SDK's fromNodeProviderChain, by the counters that moved. */
  async function sdkChoice(): Promise<string> {
    emulator.resetStats();
    const { fromNodeProviderChain } = await import("@aws-sdk/credential-providers");
    await fromNodeProviderChain({ clientConfig: { region: "us-east-1" } } as never)();
    const { stats } = emulator;
    if (stats.sts.assumeRoleWithWebIdentity > 0) return "web-identity";
    if (stats.sts.assumeRole > 0 || stats.ssoFetches > 0) return "profile";
    if (stats.containerFetches > 0) return "container";
    if (stats.credentialFetches > 0) return "imds";
    return "env-or-static";
  }

  it.each([
    [
      "web identity over IMDS",
      () => ({ AWS_WEB_IDENTITY_TOKEN_FILE: writeToken(SUB_A), AWS_ROLE_ARN: ROLE }),
    ],
    [
      "a profile with only a region: web identity",
      () => {
        const config = join(fresh(), "config");
        writeFileSync(config, "[default]\nregion = eu-west-1\n");
        return {
          AWS_CONFIG_FILE: config,
          AWS_WEB_IDENTITY_TOKEN_FILE: writeToken(SUB_A),
          AWS_ROLE_ARN: ROLE,
        };
      },
    ],
    [
      "an assume-role profile over web identity",
      () => {
        const config = join(fresh(), "config");
        writeFileSync(
          config,
          "[profile base]\naws_access_key_id = AKIAEXAMPLEBASE0001\naws_secret_access_key = base-secret-fixture\n[default]\nrole_arn = arn:aws:iam::123456789012:role/deploy\nsource_profile = base\n",
        );
        return {
          AWS_CONFIG_FILE: config,
          AWS_WEB_IDENTITY_TOKEN_FILE: writeToken(SUB_A),
          AWS_ROLE_ARN: ROLE,
        };
      },
    ],
    [
      "the container endpoint over IMDS",
      () => ({ AWS_CONTAINER_CREDENTIALS_FULL_URI: `${emulator.url}/v1/credentials` }),
    ],
    ["IMDS when nothing else is set", () => ({})],
  ])("%s", async (_name, env) => {
    useEnv(env());
    const planned = nodeProviderChainSource().source;
    expect(await sdkChoice()).toBe(planned);
  });
});

/** Runs the chain child with `env`; resolves with its JSON line. */
async function runChild(
  storeDir: string,
  env: NodeJS.ProcessEnv,
  wrap: string[] = [],
): Promise<Record<string, string>> {
  const [command, ...args] = [...wrap, process.execPath, CHILD, storeDir];
  const { stdout, stderr } = await outputOf(
    spawn(command!, args, { env, stdio: ["ignore", "pipe", "pipe"] }),
  );
  try {
    return JSON.parse(stdout.trim().split("\n").at(-1)!);
  } catch {
    throw new Error(`child printed ${JSON.stringify(stdout)}; stderr ${stderr}`);
  }
}

describe("cross-process: real child processes over one file store", () => {
  it("four processes with the same IRSA identity share one AssumeRoleWithWebIdentity; another subject does not share it", async () => {
    const storeDir = join(fresh(), "store");
    const env = {
      ...process.env,
      ...useEnv({ AWS_WEB_IDENTITY_TOKEN_FILE: writeToken(SUB_A), AWS_ROLE_ARN: ROLE }),
    };
    const results = await Promise.all([1, 2, 3, 4].map(() => runChild(storeDir, env)));
    expect(results.map((r) => r.error)).toEqual([undefined, undefined, undefined, undefined]);
    expect(new Set(results.map((r) => r.accessKeyId)).size).toBe(1);
    expect(results[0]!.source).toBe("web-identity");
    expect(emulator.stats.sts.assumeRoleWithWebIdentity).toBe(1);
    const other = await runChild(storeDir, { ...env, AWS_WEB_IDENTITY_TOKEN_FILE: writeToken(SUB_B) });
    expect(other.accessKeyId).not.toBe(results[0]!.accessKeyId);
    expect(emulator.stats.sts.assumeRoleWithWebIdentity).toBe(2);
  });

  it("container relative URI: the SDK asks 169.254.170.2 (an emulator there, in a private network namespace)", async () => {
    const storeDir = join(fresh(), "store");
    const script = join(fresh(), "relative.mjs");
    const emulatorEntry = new URL("../../imds-emulator/dist/index.js", import.meta.url).href;
    writeFileSync(
      script,
      `import { startImdsEmulator } from ${JSON.stringify(emulatorEntry)};
import { execFile } from "node:child_process";
import { promisify } from "node:util";
const emulator = await startImdsEmulator({ host: "169.254.170.2", port: 80 });
// Not spawnSync: the emulator answers on this process's event loop.
const run = async () => JSON.parse((await promisify(execFile)(process.execPath, [${JSON.stringify(CHILD)}, ${JSON.stringify(storeDir)}])).stdout);
const first = await run();
const second = await run();
console.log(JSON.stringify({ first, second, fetches: emulator.stats.containerFetches }));
await emulator.close();
`,
    );
    const env = {
      ...process.env,
      ...useEnv({ AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: "/v2/credentials/task-1" }),
    };
    const child = spawn(
      "unshare",
      [
        "-n",
        "sh",
        "-c",
        `ip link set lo up && ip addr add 169.254.170.2/32 dev lo && exec "${process.execPath}" "${script}"`,
      ],
      { env },
    );
    const { code, stdout: out, stderr } = await outputOf(child);
    if (code !== 0) throw new Error(`exit ${code}: ${stderr}`);
    const { first, second, fetches } = JSON.parse(out.trim().split("\n").at(-1)!);
    expect(first.source).toBe("container");
    expect(first.key).toMatch(/^container:http:\/\/169\.254\.170\.2\/v2\/credentials\/task-1:/);
    expect(second.accessKeyId).toBe(first.accessKeyId);
    expect(fetches, "the second process is served from the store").toBe(1);
  });
});
