// `pnpm bench`: every micro-benchmark, each measured side by side with its floor.
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { runCoreBench } from "./core.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const sections = [];

sections.push((await runCoreBench()).text);

if (existsSync(join(here, "adapters.mjs"))) {
  const { runAdapterBench } = await import("./adapters.mjs");
  sections.push((await runAdapterBench()).text);
}
if (existsSync(join(here, "cli-startup.mjs"))) {
  const { runCliStartupBench, runFirstCredentialBench } = await import("./cli-startup.mjs");
  const result = await runCliStartupBench({ runs: 30 });
  if (result?.text) sections.push(result.text);
  sections.push((await runFirstCredentialBench({ runs: 20 })).text);
}
if (existsSync(join(here, "serve.mjs"))) {
  const { runServeBench } = await import("./serve.mjs");
  sections.push((await runServeBench()).text);
}

mkdirSync(join(here, "results"), { recursive: true });
writeFileSync(join(here, "results", "bench.md"), `${sections.join("\n\n")}\n`);
console.log(`\nwrote ${join("bench", "results", "bench.md")}`);
