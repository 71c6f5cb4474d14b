import {
  type CredentialCache,
  fromCachedContainerMetadata,
  fromCachedIni,
  fromCachedInstanceMetadata,
  fromCachedTemporaryCredentials,
} from "@credcache/core";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createSourceProvider, parseSource, presetKey, wellKnownKeys } from "../src/sources.js";

/** A store that answers every key with fresh credentials and remembers which key was asked. */
function recordingStore(): CredentialCache & { asked: string[] } {
  const keys: string[] = [];
  const record = {
    v: 1,
    accessKeyId: "ASIAEXAMPLEEXAMPLE01",
    secretAccessKey: "x".repeat(40),
    expiration: Date.now() + 3600_000,
    cachedAt: Date.now(),
  };
  return {
    asked: keys,
    async get(key) {
      keys.push(key);
      return record;
    },
    async set() {},
    async remove() {},
  };
}

afterEach(() => vi.unstubAllEnvs());

// inspect and clear compute the keys core's presets use; this fails when the two drift apart.
describe("presetKey matches the keys of core's presets", () => {
  it.each([
    ["imds, default endpoint", "imds", {}],
    [
      "imds, endpoint from the environment",
      "imds",
      { AWS_EC2_METADATA_SERVICE_ENDPOINT: "http://127.0.0.1:1338" },
    ],
    ["imds, IPv6 mode", "imds", { AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE: "IPv6" }],
    [
      "container, relative URI",
      "container",
      { AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: "/v2/credentials/abc" },
    ],
    [
      "container, full URI",
      "container",
      { AWS_CONTAINER_CREDENTIALS_FULL_URI: "http://127.0.0.1:9000/creds" },
    ],
    ["profile", "profile:deploy", {}],
    ["assume-role", "assume-role:arn:aws:iam::123456789012:role/worker", {}],
    [
      "container, EKS Pod Identity",
      "container",
      {
        AWS_CONTAINER_CREDENTIALS_FULL_URI: "http://169.254.170.23/v1/credentials",
        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: "/nonexistent/eks-pod-identity-token",
      },
    ],
    ["profile, own config file", "profile:deploy", { AWS_CONFIG_FILE: "/srv/project/aws-config" }],
  ])("%s", async (_name, text, env: Record<string, string>) => {
    for (const name of [
      "AWS_EC2_METADATA_SERVICE_ENDPOINT",
      "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
      "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
      "AWS_CONTAINER_CREDENTIALS_FULL_URI",
      "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
      "AWS_CONFIG_FILE",
    ]) {
      vi.stubEnv(name, env[name] ?? "");
      if (env[name] === undefined) delete process.env[name];
    }
    const source = parseSource(text);
    const cache = recordingStore();
    const provider =
      source.kind === "imds"
        ? fromCachedInstanceMetadata({ cache })
        : source.kind === "container"
          ? fromCachedContainerMetadata({ cache })
          : source.kind === "profile"
            ? fromCachedIni({ cache, profile: source.argument })
            : fromCachedTemporaryCredentials({ cache, params: { RoleArn: source.argument } });
    await provider();
    expect(cache.asked[0]).toBe(presetKey(source, process.env));
  });
});

describe("presetKey for assume-role", () => {
  it("names the session name, duration and region process is given, so inspect finds that entry", async () => {
    const source = parseSource("assume-role:arn:aws:iam::123456789012:role/worker");
    const cache = recordingStore();
    await createSourceProvider(
      source,
      { cache },
      { sessionName: "ci", durationSeconds: 900, region: "eu-west-1" },
    )();
    const key = presetKey(source, process.env, {
      sessionName: "ci",
      durationSeconds: 900,
      region: "eu-west-1",
    });
    expect(cache.asked[0]).toBe(key);
    expect(key).toMatch(/^sts:arn:aws:iam::123456789012:role\/worker:ci:/);
    expect(presetKey(source, process.env, { sessionName: "ci" })).not.toBe(key);
  });
});

describe("wellKnownKeys", () => {
  it("lists the imds key, the default profile and the PHP default key; the container key only in a container", () => {
    const keys = wellKnownKeys({ AWS_EC2_METADATA_SERVICE_ENDPOINT: "http://127.0.0.1:1" });
    expect(keys[0]).toMatch(/^imds:http:\/\/127\.0\.0\.1:1:/);
    expect(keys.some((key) => key.startsWith("profile:default:"))).toBe(true);
    expect(keys).toContain("aws_cached_credentials");
    expect(keys.some((key) => key.startsWith("container:"))).toBe(false);
    const inContainer = wellKnownKeys({
      AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: "/v2/x",
      AWS_PROFILE: "app",
    });
    expect(inContainer.some((key) => key.startsWith("container:http://169.254.170.2/v2/x:"))).toBe(true);
    expect(inContainer.some((key) => key.startsWith("profile:app:"))).toBe(true);
  });
});
