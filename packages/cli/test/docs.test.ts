import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { fromHttp } from "@aws-sdk/credential-providers";
import { PROCESS_DEFAULTS, REFRESH_DEFAULTS } from "@credcache/core";
import { describe, expect, it } from "vitest";
import { SERVE_REFRESH } from "../src/commands/serve.js";
import { connectionLimits } from "../src/serve/connections.js";

// Statements in the CLI's docs that name a number or a behaviour of the code, checked
// against the code (or the SDK) so they cannot drift, as porting-guide.test.ts does.
const read = (path: string) => readFileSync(new URL(path, import.meta.url), "utf8");
/** Prose wraps anywhere: compared with every run of whitespace as one space. */
const flat = (text: string) => text.replace(/\s+/g, " ");
const README = read("../README.md");
const SERVE_DOC = flat(read("../../../docs/serve.md"));
const minutes = (ms: number) => ms / 60_000;

/**
 * Requests a provider makes against a server that answers every request with 500. The
 * timeout given to the SDK must be generous: a try that times out may never be counted.
 */
async function requestsUntilFailure(provider: (url: string) => Promise<unknown>): Promise<number> {
  let requests = 0;
  const server = createServer((_req, res) => {
    requests += 1;
    res.writeHead(500).end("{}");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  try {
    await expect(provider(`http://127.0.0.1:${port}/creds`)).rejects.toThrow();
  } finally {
    server.close();
  }
  return requests;
}

describe("the CLI README's --retries row", () => {
  const row = README.split("\n").find((line) => line.startsWith("| `--retries N`"))!;

  it("states the SDK's IMDS default (fromInstanceMetadata)", () => {
    const sdkRequire = createRequire(createRequire(import.meta.url).resolve("@aws-sdk/credential-providers"));
    const { DEFAULT_MAX_RETRIES } = sdkRequire("@smithy/credential-provider-imds") as {
      DEFAULT_MAX_RETRIES: number;
    };
    expect(row).toContain(`${DEFAULT_MAX_RETRIES} for IMDS`);
  });

  it("states the SDK's container default (fromHttp): one try plus that many retries", async () => {
    const requests = await requestsUntilFailure((url) =>
      fromHttp({ awsContainerCredentialsFullUri: url, timeout: 500 })(),
    );
    expect(row).toContain(`${requests - 1} for container`);
  });
});

describe("docs/serve.md on serve's refresh model", () => {
  it("names the windows serve uses, and the two ways it differs from process", () => {
    expect(SERVE_DOC).toContain(
      `(${minutes(SERVE_REFRESH.advisoryRefreshMs)} / ${minutes(SERVE_REFRESH.mandatoryRefreshMs)} min)`,
    );
    expect(SERVE_REFRESH.advisoryRefreshMs).toBe(PROCESS_DEFAULTS.advisoryRefreshMs);
    expect(SERVE_REFRESH.minValidityMs).toBe(0);
    expect(SERVE_DOC).toContain("serve has no minimum validity");
    expect(SERVE_DOC).toContain(`one with under ${minutes(PROCESS_DEFAULTS.minValidityMs)} min left`);
    expect(SERVE_REFRESH.proactiveRefresh).toBe(true);
    expect(SERVE_DOC).toContain("(proactive refresh)");
    expect(SERVE_DOC).not.toContain("the same refresh model");
  });
});

describe("the CLI README on inspect's WINDOW column", () => {
  it("gives the CLI's windows and the time long-term keys are kept", () => {
    const advisory = minutes(PROCESS_DEFAULTS.advisoryRefreshMs);
    const mandatory = minutes(PROCESS_DEFAULTS.mandatoryRefreshMs);
    expect(README).toContain(`\`fresh\` (over ${advisory} min left)`);
    expect(README).toContain(`\`advisory\` (${mandatory}–${advisory} min`);
    expect(README).toContain(
      `for ${minutes(REFRESH_DEFAULTS.noExpirationTtlMs)} min after they were fetched`,
    );
  });
});

describe("docs/serve.md and SECURITY.md on serve's connection limits", () => {
  it("give the cap at the common open-file limit and the timeouts the server sets", () => {
    const limits = connectionLimits(1024);
    expect(SERVE_DOC).toContain(`${limits.maxConnections} with the common limit of 1024`);
    expect(flat(read("../../../SECURITY.md"))).toContain(`${limits.maxConnections} at \`ulimit -n 1024\``);
    expect(SERVE_DOC).toContain(`within ${limits.headersTimeoutMs / 1000} s is closed`);
    expect(SERVE_DOC).toContain(`every ${limits.checkIntervalMs} ms`);
    expect(SERVE_DOC).toContain(`none lives past ${limits.maxConnectionMs / 1000} s`);
  });
});

describe("the --help text", () => {
  it("states the same SDK retry defaults as the README", async () => {
    const { helpText } = await import("../src/help.js");
    const row = README.split("\n").find((line) => line.startsWith("| `--retries N`"))!;
    const [, imds, container] = /(\d+) for IMDS .* (\d+) for container/.exec(row)!;
    expect(flat(helpText("process"))).toContain(`${imds} for imds, ${container} for container`);
  });
});
