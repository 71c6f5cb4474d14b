import { mkdirSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  containerMetadataKey,
  iniKey,
  instanceMetadataKey,
  readHostIdentity,
  temporaryCredentialsKey,
} from "../src/index.js";

/** A fake `/` holding the given files. */
function fakeRoot(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), "credcache-root-"));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  return root;
}

const ASSET_TAG = "sys/devices/virtual/dmi/id/board_asset_tag";
const XEN_UUID = "sys/hypervisor/uuid";
const MACHINE_ID = "etc/machine-id";
const K8S_NAMESPACE = "var/run/secrets/kubernetes.io/serviceaccount/namespace";

describe("readHostIdentity", () => {
  it("prefers the Nitro instance id, then the Xen uuid, then machine-id with the host name, then the host name", () => {
    const all = {
      [ASSET_TAG]: "i-0123456789abcdef0\n",
      [XEN_UUID]: "ec2e1916-9099-7caf-fd21-012345abcdef\n",
      [MACHINE_ID]: "3d1219c7c4c5404aaa1f6d2a48adfda4\n",
    };
    expect(readHostIdentity({ root: fakeRoot(all), hostname: "web" })).toEqual({
      kind: "instance-id",
      id: "i-0123456789abcdef0",
    });
    // A board asset tag that is no instance id (a non-EC2 machine's "Default string") is skipped.
    expect(
      readHostIdentity({ root: fakeRoot({ ...all, [ASSET_TAG]: "Default string" }), hostname: "web" }),
    ).toEqual({ kind: "xen-uuid", id: "ec2e1916-9099-7caf-fd21-012345abcdef" });
    expect(readHostIdentity({ root: fakeRoot({ [MACHINE_ID]: all[MACHINE_ID] }), hostname: "web" })).toEqual({
      kind: "machine-id",
      id: "3d1219c7c4c5404aaa1f6d2a48adfda4/web",
    });
    expect(readHostIdentity({ root: fakeRoot({}), hostname: "web" })).toEqual({
      kind: "hostname",
      id: "web",
    });
  });

  it("is read once per process with the defaults", () => {
    expect(readHostIdentity()).toBe(readHostIdentity());
  });
});

describe("instanceMetadataKey", () => {
  it("two hosts with the same host name get different keys (issue 12: shared Redis)", () => {
    const env = {};
    const a = instanceMetadataKey({
      env,
      hostname: "web-1",
      root: fakeRoot({ [ASSET_TAG]: "i-0aaaaaaaaaaaaaaaa" }),
    });
    const b = instanceMetadataKey({
      env,
      hostname: "web-1",
      root: fakeRoot({ [ASSET_TAG]: "i-0bbbbbbbbbbbbbbbb" }),
    });
    expect(a).toBe("imds:http://169.254.169.254:instance-id:i-0aaaaaaaaaaaaaaaa");
    expect(b).not.toBe(a);
    const c = instanceMetadataKey({
      env,
      hostname: "web-1",
      root: fakeRoot({ [MACHINE_ID]: "a".repeat(32) }),
    });
    const d = instanceMetadataKey({
      env,
      hostname: "web-1",
      root: fakeRoot({ [MACHINE_ID]: "b".repeat(32) }),
    });
    expect(c).not.toBe(d);
  });
});

describe("temporaryCredentialsKey", () => {
  const role = { RoleArn: "arn:aws:iam::123456789012:role/tenant" };
  const env = {};

  it("keeps the role ARN and session name readable", () => {
    expect(temporaryCredentialsKey({ ...role, RoleSessionName: "w" }, { env })).toMatch(
      /^sts:arn:aws:iam::123456789012:role\/tenant:w:[0-9a-f]{32}$/,
    );
    expect(temporaryCredentialsKey(role, { env })).toMatch(/:credcache:[0-9a-f]{32}$/);
  });

  it("every parameter that changes the credentials changes the key (issue 12: ExternalId, Policy)", () => {
    const variants: Array<[string, Parameters<typeof temporaryCredentialsKey>]> = [
      ["plain", [role, { env }]],
      ["ExternalId", [{ ...role, ExternalId: "tenant-a" }, { env }]],
      ["other ExternalId", [{ ...role, ExternalId: "tenant-b" }, { env }]],
      ["Policy", [{ ...role, Policy: '{"Statement":[]}' }, { env }]],
      ["PolicyArns", [{ ...role, PolicyArns: [{ arn: "arn:aws:iam::aws:policy/ReadOnlyAccess" }] }, { env }]],
      ["Tags", [{ ...role, Tags: [{ Key: "team", Value: "a" }] }, { env }]],
      [
        "TransitiveTagKeys",
        [{ ...role, Tags: [{ Key: "team", Value: "a" }], TransitiveTagKeys: ["team"] }, { env }],
      ],
      ["SourceIdentity", [{ ...role, SourceIdentity: "alice" }, { env }]],
      ["DurationSeconds", [{ ...role, DurationSeconds: 900 }, { env }]],
      ["SerialNumber", [{ ...role, SerialNumber: "arn:aws:iam::123456789012:mfa/a" }, { env }]],
      ["region", [role, { env, clientConfig: { region: "eu-west-1" } }]],
      ["endpoint", [role, { env, clientConfig: { endpoint: "http://127.0.0.1:4566" } }]],
      ["region from env", [role, { env: { AWS_REGION: "ap-south-1" } }]],
      ["endpoint from env", [role, { env: { AWS_ENDPOINT_URL_STS: "https://sts.example" } }]],
      ["caller", [role, { env, masterCredentials: { accessKeyId: "AKIAOTHER", secretAccessKey: "x" } }]],
    ];
    const keys = variants.map(([, args]) => temporaryCredentialsKey(...args));
    expect(new Set(keys).size).toBe(variants.length);
  });

  it("equal parameters in any order give the same key; the MFA code of the call does not count", () => {
    const a = temporaryCredentialsKey(
      { ...role, ExternalId: "x", Tags: [{ Key: "k", Value: "v" }], DurationSeconds: 900 },
      { env, clientConfig: { region: "eu-west-1", endpoint: "http://sts.local" } },
    );
    const b = temporaryCredentialsKey(
      {
        DurationSeconds: 900,
        Tags: [{ Value: "v", Key: "k" }],
        ExternalId: "x",
        ...role,
        TokenCode: "123456",
      },
      { env, clientConfig: { endpoint: "http://sts.local", region: "eu-west-1" } },
    );
    expect(a).toBe(b);
  });
});

describe("containerMetadataKey", () => {
  const eks = {
    AWS_CONTAINER_CREDENTIALS_FULL_URI: "http://169.254.170.23/v1/credentials",
    AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE:
      "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token",
  };

  it("two pods named worker-0 in different namespaces get different keys (issue 12)", () => {
    const node = { [ASSET_TAG]: "i-0aaaaaaaaaaaaaaaa" };
    const a = containerMetadataKey({
      env: eks,
      hostname: "worker-0",
      root: fakeRoot({ ...node, [K8S_NAMESPACE]: "team-a" }),
    });
    const b = containerMetadataKey({
      env: eks,
      hostname: "worker-0",
      root: fakeRoot({ ...node, [K8S_NAMESPACE]: "team-b" }),
    });
    expect(a).toContain("k8s:team-a/worker-0@instance-id:i-0aaaaaaaaaaaaaaaa");
    expect(a).not.toBe(b);
  });

  it("names the pod from the token file's claims when it is a service-account token", () => {
    const dir = mkdtempSync(join(tmpdir(), "credcache-token-"));
    const jwt = (namespace: string, uid: string) =>
      `e30.${Buffer.from(JSON.stringify({ "kubernetes.io": { namespace, pod: { name: "worker-0", uid } } })).toString("base64url")}.sig`;
    writeFileSync(join(dir, "a"), jwt("team-a", "uid-1"));
    writeFileSync(join(dir, "b"), jwt("team-b", "uid-2"));
    const root = fakeRoot({});
    const a = containerMetadataKey({
      env: { ...eks, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: join(dir, "a") },
      root,
    });
    const b = containerMetadataKey({
      env: { ...eks, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: join(dir, "b") },
      root,
    });
    expect(a).toContain(":pod:team-a/worker-0/uid-1:");
    expect(b).toContain(":pod:team-b/worker-0/uid-2:");
    // Rotating the token keeps the pod, and so the key.
    writeFileSync(join(dir, "a"), jwt("team-a", "uid-1").replace("sig", "sig2"));
    expect(
      containerMetadataKey({ env: { ...eks, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: join(dir, "a") }, root }),
    ).toBe(a);
  });

  it("follows the SDK's precedence (relative URI over full URI) and names token, token file and URI", () => {
    const root = fakeRoot({});
    const host = "hostname:h";
    const key = (env: Record<string, string>) => containerMetadataKey({ env, root, host });
    expect(
      key({
        AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: "/v2/credentials/t1",
        AWS_CONTAINER_CREDENTIALS_FULL_URI: "http://127.0.0.1:1/x",
      }),
    ).toMatch(/^container:http:\/\/169\.254\.170\.2\/v2\/credentials\/t1:hostname:h:/);
    const keys = [
      key({ AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: "/v2/credentials/t1" }),
      key({ AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: "/v2/credentials/t2" }),
      key({ AWS_CONTAINER_CREDENTIALS_FULL_URI: "http://127.0.0.1:1/x" }),
      key({
        AWS_CONTAINER_CREDENTIALS_FULL_URI: "http://127.0.0.1:1/x",
        AWS_CONTAINER_AUTHORIZATION_TOKEN: "t1",
      }),
      key({
        AWS_CONTAINER_CREDENTIALS_FULL_URI: "http://127.0.0.1:1/x",
        AWS_CONTAINER_AUTHORIZATION_TOKEN: "t2",
      }),
      key({
        AWS_CONTAINER_CREDENTIALS_FULL_URI: "http://127.0.0.1:1/x",
        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: "/a",
      }),
      key({
        AWS_CONTAINER_CREDENTIALS_FULL_URI: "http://127.0.0.1:1/x",
        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: "/b",
      }),
    ];
    expect(new Set(keys).size).toBe(keys.length);
    // The token is in the key as a digest only.
    expect(keys[3]).not.toContain("t1");
  });
});

describe("iniKey", () => {
  it("names the resolved config and credentials files (issue 12: two projects, one profile name)", () => {
    const a = iniKey("deploy", { env: { HOME: "/home/u", AWS_CONFIG_FILE: "/srv/a/config" } });
    const b = iniKey("deploy", { env: { HOME: "/home/u", AWS_CONFIG_FILE: "/srv/b/config" } });
    const c = iniKey("deploy", {
      env: { HOME: "/home/u", AWS_SHARED_CREDENTIALS_FILE: "/srv/b/credentials" },
    });
    const d = iniKey("deploy", { env: { HOME: "/home/u" } });
    expect(a).toMatch(/^profile:deploy:[0-9a-f]{32}$/);
    expect(new Set([a, b, c, d]).size).toBe(4);
    // Relative and ~ paths are made absolute as the SDK reads them.
    expect(iniKey("deploy", { env: { HOME: "/home/u", AWS_CONFIG_FILE: "cfg" }, cwd: "/srv/a" })).toBe(
      iniKey("deploy", { env: { HOME: "/home/u", AWS_CONFIG_FILE: "/srv/a/cfg" } }),
    );
    expect(iniKey("deploy", { env: { HOME: "/home/u", AWS_CONFIG_FILE: "~/.aws/config" } })).toBe(d);
  });
});

describe("containerMetadataKey: a token that names no pod (issue 19)", () => {
  const jwt = (claims: Record<string, unknown>) =>
    `e30.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.sig`;

  it("two pods named worker-0 in different namespaces, same URI and token path, sub only: different keys", () => {
    const tokenFile = join(mkdtempSync(join(tmpdir(), "credcache-token-")), "token");
    const env = {
      AWS_CONTAINER_CREDENTIALS_FULL_URI: "http://169.254.170.23/v1/credentials",
      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: tokenFile,
    };
    const root = fakeRoot({}); // no namespace file: only the token tells the pods apart
    const keyWith = (claims: Record<string, unknown>) => {
      writeFileSync(tokenFile, jwt(claims));
      return containerMetadataKey({ env, root, hostname: "worker-0", host: "hostname:node-1" });
    };
    // Team a's worker in the EKS pod identity; each case changes one claim.
    const podClaims = {
      iss: "https://oidc.eks",
      sub: "system:serviceaccount:team-a:worker",
      aud: "pods.eks.amazonaws.com",
    };
    const a = keyWith(podClaims);
    const b = keyWith({ ...podClaims, sub: "system:serviceaccount:team-b:worker" });
    expect(a).not.toBe(b);
    // Each claim counts; a rotated token with the same claims keeps the key.
    const c = keyWith({ ...podClaims, iss: "https://other" });
    const d = keyWith({ ...podClaims, aud: "sts.amazonaws.com" });
    expect(new Set([a, b, c, d]).size).toBe(4);
    expect(keyWith({ ...podClaims, iat: 2 })).toBe(a);
    // A token that is no JWT keys by its digest, never by the path alone; the token itself is not in the key.
    writeFileSync(tokenFile, "opaque-token-one");
    const e = containerMetadataKey({ env, root, host: "hostname:node-1" });
    writeFileSync(tokenFile, "opaque-token-two");
    const f = containerMetadataKey({ env, root, host: "hostname:node-1" });
    expect(e).not.toBe(f);
    expect(e).not.toContain("opaque-token");
  });

  it("a server on loopback, or a token that is no JWT, keeps the host in the key", () => {
    const root = fakeRoot({});
    const key = (env: Record<string, string>, host: string) => containerMetadataKey({ env, root, host });
    const loopback = {
      AWS_CONTAINER_CREDENTIALS_FULL_URI: "http://127.0.0.1:9911/creds",
      AWS_CONTAINER_AUTHORIZATION_TOKEN: jwt({ sub: "same" }),
    };
    expect(key(loopback, "hostname:a")).not.toBe(key(loopback, "hostname:b"));
    const agent = { ...loopback, AWS_CONTAINER_CREDENTIALS_FULL_URI: "http://169.254.170.23/v1/credentials" };
    expect(key(agent, "hostname:a"), "Pod Identity: one set per service account, fleet-wide").toBe(
      key(agent, "hostname:b"),
    );
    const opaque = { ...agent, AWS_CONTAINER_AUTHORIZATION_TOKEN: "static" };
    expect(key(opaque, "hostname:a")).not.toBe(key(opaque, "hostname:b"));
  });
});

describe("iniKey: same path and text, other files (issue 19)", () => {
  /** Replaces `path` with a new file holding `text` (a new inode: the old file exists until the rename). */
  function replaceFile(path: string, text: string, mode = 0o600): void {
    writeFileSync(`${path}.new`, text, { mode });
    renameSync(`${path}.new`, path);
  }

  it("two containers with the same $HOME and identical config text get different keys", () => {
    const home = mkdtempSync(join(tmpdir(), "credcache-home-"));
    mkdirSync(join(home, ".aws"));
    const program = join(home, "creds.sh");
    const text = `[profile app]\ncredential_process = ${program}\n`;
    const env = { HOME: home, PATH: "/usr/bin" };
    replaceFile(join(home, ".aws", "config"), text);
    replaceFile(program, "#!/bin/sh\necho a\n", 0o700);
    const a = iniKey("app", { env, host: "hostname:h" });
    expect(iniKey("app", { env, host: "hostname:h" }), "the same files: the same key").toBe(a);
    // Container B: the same path and text, another file (another mount namespace).
    replaceFile(join(home, ".aws", "config"), text);
    const b = iniKey("app", { env, host: "hostname:h" });
    expect(b).not.toBe(a);
    // The program credential_process runs is another file.
    replaceFile(program, "#!/bin/sh\necho b\n", 0o700);
    expect(iniKey("app", { env, host: "hostname:h" })).not.toBe(b);
  });

  it("names the host for host-scoped profiles, not for static keys; names the resolved profile's values", () => {
    const home = mkdtempSync(join(tmpdir(), "credcache-home-"));
    mkdirSync(join(home, ".aws"));
    const env = { HOME: home };
    writeFileSync(
      join(home, ".aws", "config"),
      [
        "[profile static]",
        "aws_access_key_id = AKIAEXAMPLESTATIC01",
        "aws_secret_access_key = SECRETFIXTUREstatic",
        "[profile role]",
        "role_arn = arn:aws:iam::123456789012:role/a",
        "source_profile = static",
        "[profile imds-role]",
        "role_arn = arn:aws:iam::123456789012:role/a",
        "credential_source = Ec2InstanceMetadata",
        "[profile proc]",
        "credential_process = /bin/true",
        "[profile sso]",
        "sso_session = corp",
        "sso_account_id = 123456789012",
        "sso_role_name = dev",
        "[sso-session corp]",
        "sso_start_url = https://corp.awsapps.com/start",
        "sso_region = eu-west-1",
      ].join("\n"),
    );
    for (const profile of ["imds-role", "proc", "sso"]) {
      expect(iniKey(profile, { env, host: "hostname:a" }), profile).not.toBe(
        iniKey(profile, { env, host: "hostname:b" }),
      );
    }
    for (const profile of ["static", "role"]) {
      expect(iniKey(profile, { env, host: "hostname:a" }), profile).toBe(
        iniKey(profile, { env, host: "hostname:b" }),
      );
    }
    const before = iniKey("role", { env, host: "hostname:a" });
    const sso = iniKey("sso", { env, host: "hostname:a" });
    // Another role in the profile, another source key, another SSO start URL: other keys.
    const config = join(home, ".aws", "config");
    const text = readFileSync(config, "utf8");
    writeFileSync(config, text.replace("role/a\nsource_profile", "role/b\nsource_profile"));
    expect(iniKey("role", { env, host: "hostname:a" })).not.toBe(before);
    writeFileSync(config, text.replace("AKIAEXAMPLESTATIC01", "AKIAEXAMPLESTATIC02"));
    expect(iniKey("role", { env, host: "hostname:a" })).not.toBe(before);
    writeFileSync(config, text.replace("corp.awsapps", "other.awsapps"));
    expect(iniKey("sso", { env, host: "hostname:a" })).not.toBe(sso);
    writeFileSync(config, text);
    expect(iniKey("role", { env, host: "hostname:a" })).toBe(before);
  });
});
