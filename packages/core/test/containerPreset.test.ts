import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type AwsCredentialIdentity,
  containerMetadataKey,
  fromCachedContainerMetadata,
} from "../src/index.js";
import { issuedSecrets, recorder, scriptedStore } from "./harness.js";
import { type ContainerServer, startContainerServer } from "./servers/credentialServers.mjs";

let server: ContainerServer;
const dir = mkdtempSync(join(tmpdir(), "credcache-container-"));

beforeAll(async () => {
  server = await startContainerServer();
});
afterAll(() => server.close());

/** The preset against `env`, on a fresh store; secrets it gets are registered for the leak check. */
async function fetchWith(env: Record<string, string>, token?: string) {
  server.state.token = token;
  const before = server.state.requests.length;
  const { store } = scriptedStore(Date);
  const rec = recorder();
  const provider = fromCachedContainerMetadata({
    cache: store,
    env,
    proactiveRefresh: false,
    maxRetries: 0,
    timeout: 5_000,
    // A refused URI is answered at once, not tried again after the shared backoff.
    lockWaitMs: 0,
    onEvent: rec.onEvent,
  });
  const settled: { identity?: AwsCredentialIdentity; error?: Error } = await provider().then(
    (identity) => ({ identity }),
    (error: Error) => ({ error }),
  );
  for (const c of server.state.issued) {
    issuedSecrets.add(c.secretAccessKey);
    issuedSecrets.add(c.sessionToken);
  }
  return { ...settled, provider, store, rec, requests: server.state.requests.slice(before) };
}

describe("fromCachedContainerMetadata (the SDK's fromHttp against a container-credentials server)", () => {
  it("full URI on loopback, no token: credentials, no Authorization header", async () => {
    const { identity, requests } = await fetchWith({
      AWS_CONTAINER_CREDENTIALS_FULL_URI: `${server.url}/creds`,
    });
    expect(identity?.accessKeyId).toBe(server.state.issued.at(-1)?.accessKeyId);
    expect(requests).toEqual([{ path: "/creds", authorization: undefined }]);
  });

  it("full URI with AWS_CONTAINER_AUTHORIZATION_TOKEN: the token is sent", async () => {
    const { identity, requests } = await fetchWith(
      {
        AWS_CONTAINER_CREDENTIALS_FULL_URI: `${server.url}/creds`,
        AWS_CONTAINER_AUTHORIZATION_TOKEN: "static-token",
      },
      "static-token",
    );
    expect(identity?.accessKeyId).toMatch(/^ASIA/);
    expect(requests.map((r) => r.authorization)).toEqual(["static-token"]);
  });

  it("EKS Pod Identity: the token file is read at each fetch, so a rotated token is sent (issue 15)", async () => {
    const tokenFile = join(dir, "eks-pod-identity-token");
    writeFileSync(tokenFile, "token-one");
    const env = {
      AWS_CONTAINER_CREDENTIALS_FULL_URI: `${server.url}/v1/credentials`,
      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: tokenFile,
    };
    const first = await fetchWith(env, "token-one");
    expect(first.identity?.accessKeyId).toMatch(/^ASIA/);
    // EKS rotates the file; the server now accepts only the new token.
    writeFileSync(tokenFile, "token-two");
    server.state.token = "token-two";
    const second = await first.provider({ forceRefresh: true });
    expect(second.accessKeyId).not.toBe(first.identity?.accessKeyId);
    expect(server.state.requests.slice(-2).map((r) => r.authorization)).toEqual(["token-one", "token-two"]);
  });

  it("the token file wins over the token, as in the SDK", async () => {
    const tokenFile = join(dir, "file-wins");
    writeFileSync(tokenFile, "from-file");
    const { identity, requests } = await fetchWith(
      {
        AWS_CONTAINER_CREDENTIALS_FULL_URI: `${server.url}/creds`,
        AWS_CONTAINER_AUTHORIZATION_TOKEN: "from-env",
        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: tokenFile,
      },
      "from-file",
    );
    expect(identity?.accessKeyId).toMatch(/^ASIA/);
    expect(requests.map((r) => r.authorization)).toEqual(["from-file"]);
  });

  it("the relative URI wins over the full URI (it names 169.254.170.2, never the full URI's server)", async () => {
    const env = {
      AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: "/v2/credentials/task-1",
      AWS_CONTAINER_CREDENTIALS_FULL_URI: `${server.url}/creds`,
    };
    // 169.254.170.2 does not answer here: the point is that the loopback server is never asked.
    const { error, requests, rec } = await fetchWith(env);
    expect(error).toBeInstanceOf(Error);
    expect(requests).toEqual([]);
    expect(rec.of("miss")[0]?.key).toBe(containerMetadataKey({ env }));
    expect(rec.of("miss")[0]?.key).toMatch(/^container:http:\/\/169\.254\.170\.2\/v2\/credentials\/task-1:/);
  }, 30_000);

  it("allowed hosts: the loopback range is accepted, any other plain-HTTP host is refused without a request", async () => {
    const other = await startContainerServer({ host: "127.0.0.2" });
    try {
      const ok = await fetchWith({ AWS_CONTAINER_CREDENTIALS_FULL_URI: `${other.url}/creds` });
      expect(ok.identity?.accessKeyId).toBe(other.state.issued[0]?.accessKeyId);
      for (const c of other.state.issued) issuedSecrets.add(c.secretAccessKey);
    } finally {
      await other.close();
    }
    for (const uri of [
      "http://192.0.2.10/creds",
      "http://169.254.169.254/latest/meta-data",
      "http://example.com/creds",
    ]) {
      const refused = await fetchWith({ AWS_CONTAINER_CREDENTIALS_FULL_URI: uri });
      expect(refused.error?.message, uri).toMatch(/URL not accepted|169\.254\.170\.23/);
      expect(refused.identity).toBeUndefined();
    }
    const none = await fetchWith({});
    expect(none.error?.message).toMatch(
      /AWS_CONTAINER_CREDENTIALS_FULL_URI or AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/,
    );
  });

  it("the key names the URI and the token: two containers with other tokens never share credentials", async () => {
    const { store } = scriptedStore(Date);
    const base = { AWS_CONTAINER_CREDENTIALS_FULL_URI: `${server.url}/creds` };
    server.state.token = undefined;
    const a = fromCachedContainerMetadata({
      cache: store,
      env: { ...base, AWS_CONTAINER_AUTHORIZATION_TOKEN: "tenant-a" },
      proactiveRefresh: false,
    });
    const b = fromCachedContainerMetadata({
      cache: store,
      env: { ...base, AWS_CONTAINER_AUTHORIZATION_TOKEN: "tenant-b" },
      proactiveRefresh: false,
    });
    const x = await a();
    const y = await b();
    for (const c of server.state.issued) issuedSecrets.add(c.secretAccessKey);
    expect(y.accessKeyId).not.toBe(x.accessKeyId);
    expect(store.data.size).toBe(2);
  });
});
