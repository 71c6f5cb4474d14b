// Small credential servers for tests and the battery: a container-credentials endpoint
// (what ECS, the EKS Pod Identity Agent and `credcache serve` answer) and an STS stub that
// answers AssumeRole. Plain ESM so that the battery's node processes can load it too.
import { createHash, randomBytes } from "node:crypto";
import { createServer } from "node:http";

/** Credentials that expire in an hour; the secrets carry a fixture prefix for leak checks. */
function issue(label) {
  const tag = createHash("sha256").update(label).digest("hex").slice(0, 12).toUpperCase();
  return {
    accessKeyId: `ASIA${tag}${randomBytes(2).toString("hex").toUpperCase()}`,
    secretAccessKey: `SECRETFIXTURE${randomBytes(12).toString("hex")}`,
    sessionToken: `TOKENFIXTURE${randomBytes(16).toString("hex")}`,
    expiration: new Date(Date.now() + 3_600_000).toISOString().replace(/\.\d{3}Z$/, "Z"),
  };
}

function listen(server, host) {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => resolve(server.address().port));
  });
}

function closer(server) {
  return () =>
    new Promise((resolve) => {
      server.closeAllConnections?.();
      server.close(() => resolve());
    });
}

/**
 * A container-credentials endpoint on `host` (default 127.0.0.1). With `token` set, a request
 * whose Authorization header differs gets 401. Records each request's path and header.
 */
export async function startContainerServer({ host = "127.0.0.1", token } = {}) {
  const state = { token, requests: [], issued: [] };
  const server = createServer((req, res) => {
    state.requests.push({ path: req.url, authorization: req.headers.authorization });
    if (state.token !== undefined && req.headers.authorization !== state.token) {
      res.writeHead(401, { "content-type": "application/json" });
      res.end('{"Code":"AccessDenied","Message":"bad token"}');
      return;
    }
    const c = issue(`${req.url}|${req.headers.authorization ?? ""}`);
    state.issued.push(c);
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        AccessKeyId: c.accessKeyId,
        SecretAccessKey: c.secretAccessKey,
        Token: c.sessionToken,
        Expiration: c.expiration,
      }),
    );
  });
  const port = await listen(server, host);
  const shown = host.includes(":") ? `[${host}]` : host;
  return { url: `http://${shown}:${port}`, port, state, close: closer(server) };
}

function field(name, value) {
  return `<${name}>${value}</${name}>`;
}

/**
 * An STS stub: answers AssumeRole (query protocol) with credentials whose access key id is
 * derived from the parameters it got, and records every call's parameters.
 */
export async function startStsStub() {
  const calls = [];
  const issued = [];
  const server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk) => {
      body += chunk;
    });
    req.on("end", () => {
      const params = Object.fromEntries(new URLSearchParams(body));
      calls.push(params);
      if (params.Action !== "AssumeRole") {
        res.writeHead(400, { "content-type": "text/xml" });
        res.end("<ErrorResponse><Error><Code>InvalidAction</Code></Error></ErrorResponse>");
        return;
      }
      const c = issue(JSON.stringify(params));
      issued.push({ ...c, params });
      res.writeHead(200, { "content-type": "text/xml" });
      res.end(
        `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>` +
          field(
            "Credentials",
            field("AccessKeyId", c.accessKeyId) +
              field("SecretAccessKey", c.secretAccessKey) +
              field("SessionToken", c.sessionToken) +
              field("Expiration", c.expiration),
          ) +
          field(
            "AssumedRoleUser",
            field("Arn", `${params.RoleArn}/${params.RoleSessionName}`) +
              field("AssumedRoleId", "AROAEXAMPLE:x"),
          ) +
          `</AssumeRoleResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></AssumeRoleResponse>`,
      );
    });
  });
  const port = await listen(server, "127.0.0.1");
  /** The parameters of the call that issued `accessKeyId`. */
  const paramsOf = (accessKeyId) => issued.find((c) => c.accessKeyId === accessKeyId)?.params;
  return { url: `http://127.0.0.1:${port}`, calls, issued, paramsOf, close: closer(server) };
}
