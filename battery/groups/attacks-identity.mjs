// Attacks on identity and loading (issue 12, issue 15): a node_modules planted in the working
// directory; assume-role requests that differ only in ExternalId or session Policy; two hosts
// with the same host name on one Redis; two pods with the same name in different namespaces.
// Each sharing attack runs against the shared Redis with a control that uses the old,
// too-narrow key: the control must leak (so the check can see a leak), the preset must not.

import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  fromCachedContainerMetadata,
  fromCachedInstanceMetadata,
  fromCachedTemporaryCredentials,
  readHostIdentity,
} from "@credcache/core";
import { startImdsEmulator } from "@credcache/imds-emulator";
import { startContainerServer, startStsStub } from "../../packages/core/test/servers/credentialServers.mjs";
import { expect, REPO_DIR, startGroup } from "../harness.mjs";
import { openStore, REDIS_URL } from "../stores.mjs";

const g = startGroup("attacks-identity");
const namespace = `battery-ident-${g.runId}`;
const redis = await openStore({ kind: "redis", url: REDIS_URL, namespace });

/** Resolves once through a fresh provider (its own L1, as a new process would), recording what it saw. */
async function resolveOnce(create) {
  const seen = g.observe();
  const provider = create({
    cache: redis,
    proactiveRefresh: false,
    logger: seen.logger,
    onEvent: seen.onEvent,
  });
  try {
    const identity = await provider();
    g.seen(identity);
    return identity;
  } finally {
    provider.close();
  }
}

// ---- a node_modules planted in the working directory ----

const app = g.tmp("app");
for (const pkg of ["config", "core"]) {
  const from = join(REPO_DIR, "packages", pkg);
  const copy = join(app, "node_modules", "@credcache", pkg);
  mkdirSync(copy, { recursive: true });
  cpSync(join(from, "dist"), join(copy, "dist"), { recursive: true });
  writeFileSync(join(copy, "package.json"), readFileSync(join(from, "package.json")));
}
const configCopy = join(app, "node_modules", "@credcache", "config");
const appMain = join(app, "main.mjs");
writeFileSync(
  appMain,
  `const { createCache } = await import(${JSON.stringify(pathToFileURL(join(configCopy, "dist", "index.js")).href)});
   let result;
   try { await createCache(process.argv[2]); result = { loaded: true }; }
   catch (e) { result = { loaded: false, code: e.code }; }
   console.log("@@" + JSON.stringify({ t: "result", ...result }));`,
);

const planted = [
  { pkg: "@credcache/memory", factory: "memoryCache", url: "memory:" },
  { pkg: "@credcache/fs", factory: "fileCache", url: `file://${join(app, "fs-cache")}` },
  { pkg: "@credcache/sqlite", factory: "sqliteCache", url: `sqlite://${join(app, "cache.db")}` },
  { pkg: "@credcache/keyv", factory: "createRedisCache", url: REDIS_URL },
];

await g.check(
  "cwd: a planted node_modules adapter is never run (core installed apart from the app)",
  async (c) => {
    let leaks = 0;
    for (const { pkg, factory, url } of planted) {
      await c.trial(async () => {
        const cwd = g.tmp("cwd");
        const marker = join(cwd, "PLANTED-CODE-RAN");
        const dir = join(cwd, "node_modules", pkg);
        mkdirSync(dir, { recursive: true });
        writeFileSync(
          join(dir, "package.json"),
          JSON.stringify({ name: pkg, type: "module", main: "index.js" }),
        );
        writeFileSync(
          join(dir, "index.js"),
          `import { writeFileSync } from "node:fs"; writeFileSync(${JSON.stringify(marker)}, "ran");
         export function ${factory}() { return { get: async () => undefined, set: async () => {}, remove: async () => {} }; }`,
        );
        const child = g.spawn(appMain, {
          args: [url],
          cwd,
          label: `planted-${factory}`,
          env: { NODE_PATH: "" },
        });
        const result = await child.waitType("result", 30_000);
        await child.stop();
        if (existsSync(marker)) leaks += 1;
        expect(!existsSync(marker), `${pkg}: the planted package ran`);
        expect(
          result.code === "ERR_CREDCACHE_MISSING_ADAPTER",
          `${pkg}: expected a missing-adapter error, got ${JSON.stringify(result)}`,
        );
      });
    }
    c.note = `${planted.length} planted packages, ${leaks} ran`;
  },
);

// ---- assume-role requests that differ in ExternalId or session Policy ----

const sts = await startStsStub();
const RoleArn = "arn:aws:iam::123456789012:role/battery-tenant";
const master = {
  accessKeyId: "AKIABATTERYMASTER01",
  secretAccessKey: "battery-master-secret-0123456789abcdef",
};
g.secrets([master.secretAccessKey]);
const readOnly =
  '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}';
const requests = [
  { name: "tenant A (right ExternalId)", params: { ExternalId: "tenant-a-secret" } },
  { name: "tenant B (wrong ExternalId)", params: { ExternalId: "guess" } },
  { name: "no ExternalId", params: {} },
  { name: "read-only session Policy", params: { Policy: readOnly } },
  { name: "Policy and ExternalId", params: { Policy: readOnly, ExternalId: "tenant-a-secret" } },
];

function assumeRole(params, key) {
  return (cacheOptions) =>
    fromCachedTemporaryCredentials({
      ...cacheOptions,
      ...(key && { key }),
      params: { RoleArn, RoleSessionName: `battery-${g.runId}`, ...params },
      masterCredentials: master,
      clientConfig: { region: "us-east-1", endpoint: sts.url, maxAttempts: 1 },
    });
}

/** Every request in order, twice; a leak is credentials STS issued for other parameters. */
async function assumeAll(c, key) {
  let leaks = 0;
  for (let round = 0; round < 2; round++) {
    for (const { params } of requests) {
      c.attempt();
      const identity = await resolveOnce(assumeRole(params, key));
      g.secrets(sts.issued.flatMap((i) => [i.secretAccessKey, i.sessionToken]));
      const got = sts.paramsOf(identity.accessKeyId) ?? {};
      if (
        (got.ExternalId ?? null) !== (params.ExternalId ?? null) ||
        (got.Policy ?? null) !== (params.Policy ?? null)
      ) {
        leaks += 1;
      }
    }
  }
  return leaks;
}

await g.check(
  "sts: other ExternalId or Policy never gets another request's credentials (shared Redis)",
  async (c) => {
    const controlLeaks = await assumeAll(c, `sts-control-${g.runId}`);
    expect(controlLeaks > 0, "control: one key for all requests leaked nothing, so a leak could not be seen");
    const callsBefore = sts.calls.length;
    const leaks = await assumeAll(c);
    if (leaks > 0) c.fail(`${leaks} requests got credentials issued for other parameters`);
    // One STS call per distinct request; the second round is served from Redis.
    expect(
      sts.calls.length - callsBefore === requests.length,
      `STS calls: ${sts.calls.length - callsBefore}`,
    );
    c.note = `${requests.length} requests x 2 rounds; control leaks ${controlLeaks}, leaks ${leaks}`;
  },
);
await sts.close();

// ---- two hosts named web-1 on one Redis ----

const imds = await startImdsEmulator();
process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = imds.url;

/** A fake `/` for one host: its DMI board asset tag (the instance id on Nitro). */
function hostRoot(instanceId) {
  const root = g.tmp("host");
  mkdirSync(join(root, "sys/devices/virtual/dmi/id"), { recursive: true });
  writeFileSync(join(root, "sys/devices/virtual/dmi/id/board_asset_tag"), `${instanceId}\n`);
  return root;
}

async function twoHosts(c, hostOf) {
  c.attempt();
  // Host A fetches; then the instance profile's credentials on host B are other ones.
  const a = await resolveOnce((o) => fromCachedInstanceMetadata({ ...o, host: hostOf("a") }));
  imds.rotate();
  const b = await resolveOnce((o) => fromCachedInstanceMetadata({ ...o, host: hostOf("b") }));
  g.secrets(imds.secretsIssued());
  return b.accessKeyId === a.accessKeyId ? 1 : 0;
}

await g.check(
  "imds: two hosts with the same host name on one Redis never share instance credentials",
  async (c) => {
    let controlLeaks = 0;
    let leaks = 0;
    for (let i = 0; i < 3; i++) {
      const run = `${g.runId}-${i}`;
      controlLeaks += await twoHosts(c, () => `hostname:web-1-${run}`);
      const roots = { a: hostRoot(`i-0a${i}aaaaaaaaaaaaaa`), b: hostRoot(`i-0b${i}bbbbbbbbbbbbbb`) };
      leaks += await twoHosts(c, (host) => {
        const { kind, id } = readHostIdentity({ root: roots[host], hostname: "web-1" });
        return `${kind}:${id}`;
      });
    }
    expect(controlLeaks === 3, `control (host name only) leaked ${controlLeaks} of 3`);
    if (leaks > 0) c.fail(`${leaks} hosts got another host's instance credentials`);
    c.note = `3 host pairs; control leaks ${controlLeaks}, leaks ${leaks}`;
  },
);
await imds.close();

// ---- two pods named worker-0 in different namespaces (EKS Pod Identity) ----

const agent = await startContainerServer();
const tokens = g.tmp("tokens");

/** A pod's EKS Pod Identity token: a service-account JWT naming its namespace and pod. */
function podEnv(podNamespace, uid) {
  const claims = { "kubernetes.io": { namespace: podNamespace, pod: { name: "worker-0", uid } } };
  const file = join(tokens, `${podNamespace}-${uid}`);
  writeFileSync(file, `e30.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.sig`);
  return {
    AWS_CONTAINER_CREDENTIALS_FULL_URI: `${agent.url}/v1/credentials`,
    AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: file,
  };
}

async function twoPods(c, run, key) {
  c.attempt();
  const a = await resolveOnce((o) =>
    fromCachedContainerMetadata({ ...o, env: podEnv(`team-a-${run}`, `uid-a-${run}`), ...(key && { key }) }),
  );
  const b = await resolveOnce((o) =>
    fromCachedContainerMetadata({ ...o, env: podEnv(`team-b-${run}`, `uid-b-${run}`), ...(key && { key }) }),
  );
  g.secrets(agent.state.issued.flatMap((i) => [i.secretAccessKey, i.sessionToken]));
  return b.accessKeyId === a.accessKeyId ? 1 : 0;
}

await g.check("container: two pods named worker-0 in other namespaces never share credentials", async (c) => {
  let controlLeaks = 0;
  let leaks = 0;
  for (let i = 0; i < 3; i++) {
    const run = `${g.runId}-${i}`;
    controlLeaks += await twoPods(
      c,
      `control-${run}`,
      `container:${agent.url}/v1/credentials:worker-0-${run}`,
    );
    leaks += await twoPods(c, run);
  }
  expect(controlLeaks === 3, `control (URI and pod name only) leaked ${controlLeaks} of 3`);
  if (leaks > 0) c.fail(`${leaks} pods got another pod's credentials`);
  c.note = `3 pod pairs; control leaks ${controlLeaks}, leaks ${leaks}`;
});
await agent.close();

await redis.close?.();
g.finish();
