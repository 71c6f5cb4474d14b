import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach } from "vitest";
import { type ImdsEmulator, type ImdsEmulatorOptions, startImdsEmulator } from "../src/index.js";

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * A plain node:http call with no connection reuse, so a reset or hang on one
 * request never leaks into the next. Rejects on socket errors and on `timeoutMs`.
 */
export function http(
  url: string,
  options: { method?: string; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? "GET", headers: options.headers, agent: false });
    if (options.timeoutMs !== undefined) {
      req.setTimeout(options.timeoutMs, () =>
        req.destroy(Object.assign(new Error("client timeout"), { code: "TIMEOUT" })),
      );
    }
    req.on("error", reject);
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
    });
    req.end();
  });
}

export async function getToken(base: string, ttlSeconds = 21_600): Promise<string> {
  const res = await http(`${base}/latest/api/token`, {
    method: "PUT",
    headers: { "x-aws-ec2-metadata-token-ttl-seconds": String(ttlSeconds) },
  });
  if (res.status !== 200) throw new Error(`token PUT answered ${res.status}`);
  return res.body;
}

export { type TestClock, testClock } from "../../../test/support/testClock.mjs";

/** Variables that would let the SDK find credentials or an endpoint anywhere but the emulator. */
const SDK_ENV = [
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
  "AWS_CREDENTIAL_EXPIRATION",
  "AWS_PROFILE",
  "AWS_DEFAULT_PROFILE",
  "AWS_CONFIG_FILE",
  "AWS_SHARED_CREDENTIALS_FILE",
  "AWS_CONTAINER_CREDENTIALS_FULL_URI",
  "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
  "AWS_CONTAINER_AUTHORIZATION_TOKEN",
  "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
  "AWS_WEB_IDENTITY_TOKEN_FILE",
  "AWS_ROLE_ARN",
  "AWS_ROLE_SESSION_NAME",
  "AWS_EC2_METADATA_DISABLED",
  "AWS_EC2_METADATA_V1_DISABLED",
  "AWS_EC2_METADATA_SERVICE_ENDPOINT",
  "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
];

/**
 * The environment an SDK process needs to reach only the emulator at `url`: no static keys,
 * no profile files (nonexistent paths), no container or web-identity variables.
 */
export function sdkEnv(url: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of SDK_ENV) delete env[name];
  const missing = join(tmpdir(), `imds-emulator-test-no-such-dir-${process.pid}`);
  return {
    ...env,
    AWS_CONFIG_FILE: join(missing, "config"),
    AWS_SHARED_CREDENTIALS_FILE: join(missing, "credentials"),
    AWS_EC2_METADATA_SERVICE_ENDPOINT: url,
    ...extra,
  };
}

/** Points this process's SDK at the emulator; returns a function that restores the environment. */
export function useSdkEnv(url: string, extra: Record<string, string> = {}): () => void {
  const saved = Object.fromEntries(SDK_ENV.map((name) => [name, process.env[name]]));
  const next = sdkEnv(url, extra);
  for (const name of SDK_ENV) {
    if (next[name] === undefined) delete process.env[name];
    else process.env[name] = next[name];
  }
  return () => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
}

/** An SDK `Logger` that records what it is given. */
export function recordingLogger() {
  const lines: { level: string; text: string }[] = [];
  const log =
    (level: string) =>
    (...args: unknown[]) => {
      lines.push({ level, text: args.map(String).join(" ") });
    };
  return { lines, debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") };
}

/**
 * One emulator per test: `start` starts it, `current` is the one this test started, and
 * it is closed after the test.
 */
export function emulatorPerTest(): {
  start(options?: ImdsEmulatorOptions): Promise<ImdsEmulator>;
  readonly current: ImdsEmulator;
} {
  let imds: ImdsEmulator | undefined;
  afterEach(async () => {
    await imds?.close();
    imds = undefined;
  });
  return {
    start: async (options = {}) => {
      imds = await startImdsEmulator(options);
      return imds;
    },
    get current() {
      if (!imds) throw new Error("this test started no emulator");
      return imds;
    },
  };
}

/**
 * {@link emulatorPerTest} whose `start` also points this process's SDK at the emulator (and
 * only at it, with `env` on top) until the test ends.
 */
export function sdkEmulatorPerTest(): {
  start(options?: ImdsEmulatorOptions, env?: Record<string, string>): Promise<ImdsEmulator>;
  readonly current: ImdsEmulator;
} {
  const emulators = emulatorPerTest();
  let restoreEnv: (() => void) | undefined;
  afterEach(() => {
    restoreEnv?.();
    restoreEnv = undefined;
  });
  return {
    start: async (options = {}, env = {}) => {
      const imds = await emulators.start(options);
      restoreEnv = useSdkEnv(imds.url, env);
      return imds;
    },
    get current() {
      return emulators.current;
    },
  };
}
