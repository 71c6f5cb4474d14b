import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { outputOf } from "../../../../test/support/childOutput.mjs";
import { assertBuilt } from "../helpers.js";

// Stock clients nobody here wrote (PHP AsyncAws, Ruby, botocore, Go v2, JS v3) against
// `credcache serve --ecs-agent` on the real 169.254.170.2:80, inside a private network
// namespace so nothing outside the test can reach it. netns-run.mjs does the work there
// and reports counts, versions and key ids (never a secret).

const RUNNER = fileURLToPath(new URL("./netns-run.mjs", import.meta.url));
const SERVE_MD = fileURLToPath(new URL("../../../../docs/serve.md", import.meta.url));
/** In CI these must run: the "done when" names them. */
const REQUIRED_IN_CI = new Set(["php-async-aws", "ruby-aws-sdk-core"]);
const CLIENTS = ["php-async-aws", "ruby-aws-sdk-core", "botocore", "go-sdk-v2", "js-sdk-v3"] as const;
const HERD = 16;

interface ClientResult {
  status: "ok" | "fail" | "skip";
  why?: string;
  version?: string;
  accessKeyId?: string;
  expiresEarlierBySeconds?: number;
  sqsMessageId?: string;
  sqsChecks?: string[];
}
interface Report {
  clients: Record<string, ClientResult>;
  accessKeyId: string;
  herd?: {
    processes: number;
    viaServe: { ok: number; sourceFetches: number };
    direct: { ok: number; sourceFetches: number; imdsv1Reads: number };
  };
  serveLog: { lines: number; leaks: number };
  dnat: { status: "ok" | "skip"; why?: string; clients?: Record<string, string> };
}

/** Why a private network namespace cannot be made here, or `undefined` when it can. */
function whyNoNamespace(): string | undefined {
  if (process.getuid?.() !== 0) return "not root";
  const probe = spawnSync("unshare", ["-n", "sh", "-c", "ip link set lo up"], { encoding: "utf8" });
  if (probe.error) return `unshare unavailable (${(probe.error as NodeJS.ErrnoException).code})`;
  return probe.status === 0 ? undefined : `unshare -n failed: ${probe.stderr.trim()}`;
}

async function runInNamespace(): Promise<Report> {
  const setup = ["ip link set lo up", "ip addr add 169.254.170.2/32 dev lo", 'exec "$0" "$1"'].join(" && ");
  const child = spawn("unshare", ["-n", "sh", "-c", setup, process.execPath, RUNNER], {
    env: { ...process.env, CREDCACHE_INTEROP_HERD: String(HERD) },
  });
  const { code, stdout, stderr } = await outputOf(child);
  if (code !== 0) throw new Error(`netns-run exited ${code}: ${stderr.slice(-2000)}`);
  return JSON.parse(stdout.trim().split("\n").pop()!) as Report;
}

/** The rows of docs/serve.md's client matrix, by the interop name in their last cell. */
function matrixRows(): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of readFileSync(SERVE_MD, "utf8").split("\n")) {
    const tested = /interop: `([a-z0-9-]+)`/.exec(line);
    if (line.startsWith("|") && tested) {
      rows.set(
        tested[1]!,
        line
          .split("|")
          .slice(1, -1)
          .map((cell) => cell.trim()),
      );
    }
  }
  return rows;
}

const noNamespace = whyNoNamespace();
if (noNamespace && !process.env.CI) {
  console.log(`interop clients skipped: ${noNamespace} (they run as root in a private network namespace)`);
}

describe.skipIf(noNamespace !== undefined && !process.env.CI)(
  "stock clients through serve --ecs-agent",
  () => {
    let report: Report;

    beforeAll(async () => {
      assertBuilt();
      if (noNamespace) throw new Error(`interop clients cannot run in CI: ${noNamespace}`);
      report = await runInNamespace();
    }, 240_000);

    for (const name of CLIENTS) {
      it(`${name} gets the exact set served`, ({ skip }) => {
        const result = report.clients[name]!;
        if (result.status === "skip") {
          if (process.env.CI && REQUIRED_IN_CI.has(name))
            throw new Error(`${name} is required in CI: ${result.why}`);
          console.log(`interop ${name} skipped: ${result.why}`);
          skip();
        }
        expect(result.status, result.why).toBe("ok");
        expect(result.accessKeyId).toBe(report.accessKeyId);
        // Clients may expire a set early by their own margin, never late.
        expect(result.expiresEarlierBySeconds).toBeGreaterThanOrEqual(0);
      });
    }

    it("AsyncAws signs SQS SendMessage with exactly that set (SigV4 checked by the endpoint)", ({ skip }) => {
      if (report.clients["php-async-aws"]!.status === "skip") skip();
      expect(report.clients["php-async-aws"]!.sqsChecks).toEqual(["ok"]);
      expect(report.clients["php-async-aws"]!.sqsMessageId).toBe("interop-1");
    });

    it(`a herd of ${HERD} PHP processes: 1 source fetch through serve, one each straight to IMDS`, ({
      skip,
    }) => {
      if (!report.herd) skip();
      const herd = report.herd!;
      console.log(`interop herd: ${JSON.stringify(herd)}`);
      expect(herd.viaServe).toEqual({ ok: HERD, sourceFetches: 1 });
      expect(herd.direct.ok).toBe(HERD);
      expect(herd.direct.sourceFetches).toBe(HERD);
      // AsyncAws 1.18 speaks IMDSv1 only: two tokenless GETs per process.
      expect(herd.direct.imdsv1Reads).toBe(2 * HERD);
    });

    it("behind a DNAT rule (OUTPUT, 169.254.170.2:80 to a loopback port), PHP and Ruby get the set unchanged", ({
      skip,
    }) => {
      if (report.dnat.status === "skip") {
        if (process.env.CI) throw new Error(`the DNAT setup is required in CI: ${report.dnat.why}`);
        console.log(`interop DNAT skipped: ${report.dnat.why}`);
        skip();
      }
      expect(report.dnat.clients).toEqual({ "php-async-aws": "ok", "ruby-aws-sdk-core": "ok" });
    });

    it("serve logged neither a secret nor the relative URI", () => {
      expect(report.serveLog.lines).toBeGreaterThan(0);
      expect(report.serveLog.leaks).toBe(0);
    });

    it("docs/serve.md's client matrix says what these clients did", () => {
      const rows = matrixRows();
      for (const name of CLIENTS) {
        const result = report.clients[name]!;
        const row = rows.get(name);
        expect(row, `docs/serve.md has no matrix row marked interop: \`${name}\``).toBeDefined();
        const [, , , mode, tested] = row!;
        if (result.status !== "ok") continue;
        expect(tested, name).toMatch(/^✓ /);
        expect(mode, name).toContain("--ecs-agent");
        // Versions of Debian's packages are fixed per release; the row names the one tested.
        if (name !== "js-sdk-v3" && name !== "botocore") expect(tested, name).toContain(result.version!);
      }
    });
  },
);
