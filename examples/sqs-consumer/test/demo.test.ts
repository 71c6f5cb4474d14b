// The README's demo, run as a user runs it (`pnpm demo -- ...` hands node a `--` first),
// scaled down. Its table is parsed and its counts asserted, never its timings.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const DEMO = fileURLToPath(new URL("../demo.mjs", import.meta.url));

interface Row {
  processes: number;
  processed: string;
  fetches: number;
  errors: number;
}

/** Runs the demo and returns its table, one row per backend (keyed by the backend's first word). */
function demo(args: string[]): { code: number | null; rows: Map<string, Row>; output: string } {
  const run = spawnSync(process.execPath, [DEMO, "--", ...args], {
    encoding: "utf8",
    timeout: 120_000,
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" },
  });
  const output = `${run.stdout}${run.stderr}`;
  const rows = new Map<string, Row>();
  for (const line of run.stdout.split("\n")) {
    const cells = line.split("|").map((cell) => cell.trim());
    // | backend | processes | messages processed | IMDS credential fetches | IMDS requests | credential errors | ...
    if (cells.length < 8 || !/^\d+$/.test(cells[2] ?? "")) continue;
    rows.set((cells[1] ?? "").split(" ")[0] ?? "", {
      processes: Number(cells[2]),
      processed: cells[3] ?? "",
      fetches: Number(cells[4]),
      errors: Number(cells[6]),
    });
  }
  return { code: run.status, rows, output };
}

describe("pnpm demo", () => {
  it("drains the queue with every backend; the file store fetches once, the SDK alone once per process", () => {
    const { code, rows, output } = demo(["--procs", "3", "--waves", "2", "--backends", "none,file"]);
    expect(code, output).toBe(0);
    expect(rows.get("none"), output).toMatchObject({ processes: 6, processed: "30/30", fetches: 6 });
    expect(rows.get("file"), output).toMatchObject({
      processes: 6,
      processed: "30/30",
      fetches: 1,
      errors: 0,
    });
  });

  it("--fault: IMDS throttles and hangs, and the cached backend processes everything with zero credential errors", () => {
    const { code, rows, output } = demo([
      "--fault",
      "--procs",
      "3",
      "--waves",
      "2",
      "--backends",
      "none,file",
    ]);
    expect(code, output).toBe(0);
    expect(output).toMatch(/--fault: during waves/);
    expect(rows.get("file"), output).toMatchObject({ processed: "30/30", errors: 0 });
    expect(rows.get("none")?.processes, output).toBe(6);
  });

  it("serve backend: workers get credentials from credcache serve through the SDK's container provider, with one IMDS fetch", () => {
    const { code, rows, output } = demo(["--procs", "3", "--waves", "2", "--backends", "serve"]);
    expect(code, output).toBe(0);
    expect(rows.get("serve"), output).toMatchObject({
      processes: 6,
      processed: "30/30",
      fetches: 1,
      errors: 0,
    });
  });
});
