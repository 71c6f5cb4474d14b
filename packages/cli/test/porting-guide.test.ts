import { mkdir, readFile, rm, rmdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const GUIDE = fileURLToPath(new URL("../../../docs/porting-from-php.md", import.meta.url));
// Inside the package (and git-ignored), so the snippets resolve @credcache/*, the AWS SDK and
// keyv exactly as code in this repository does.
const WORK = fileURLToPath(new URL(`../.credcache-tmp/porting-guide-${process.pid}/`, import.meta.url));

interface Snippet {
  file: string;
  line: number;
  code: string;
}

function extractSnippets(markdown: string): { snippets: Snippet[]; unchecked: number[] } {
  const snippets: Snippet[] = [];
  const unchecked: number[] = [];
  const lines = markdown.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const fence = /^```(\S*)\s*$/.exec(lines[i]!);
    if (!fence) continue;
    const lang = fence[1];
    const start = i + 1;
    let end = start;
    while (end < lines.length && lines[end] !== "```") end++;
    if (lang === "ts") {
      snippets.push({
        file: join(WORK, `snippet-${snippets.length + 1}.ts`),
        line: start + 1,
        code: lines.slice(start, end).join("\n"),
      });
    } else if (["typescript", "js", "javascript", "mjs", "tsx"].includes(lang ?? "")) {
      unchecked.push(start);
    }
    i = end;
  }
  return { snippets, unchecked };
}

let markdown: string;
let snippets: Snippet[];

beforeAll(async () => {
  markdown = await readFile(GUIDE, "utf8");
  snippets = extractSnippets(markdown).snippets;
  await mkdir(WORK, { recursive: true });
  // ESM, so the snippets may use top-level await as application code does.
  await writeFile(join(WORK, "package.json"), JSON.stringify({ type: "module" }));
  for (const snippet of snippets) await writeFile(snippet.file, snippet.code);
});

afterAll(async () => {
  await rm(WORK, { recursive: true, force: true });
  // The parent too, unless another run is using it.
  await rmdir(join(WORK, "..")).catch(() => {});
});

describe("docs/porting-from-php.md", () => {
  it("marks every TypeScript block ```ts so that none escapes the check", () => {
    const { unchecked } = extractSnippets(markdown);
    expect(unchecked, `code blocks at lines ${unchecked.join(", ")} must be fenced as \`\`\`ts`).toEqual([]);
    expect(snippets.length).toBeGreaterThanOrEqual(8);
  });

  it("covers every PHP API in the side-by-side table", () => {
    for (const name of [
      "Aws\\CacheInterface",
      "LruArrayCache",
      "DoctrineCacheAdapter",
      "FilesystemCache",
      "PsrCacheAdapter",
      "Psr16CacheAdapter",
      "CredentialProvider::cache",
      "memoize",
      "defaultProvider(['credentials' => $cache])",
      "credential_process = ",
    ]) {
      expect(markdown).toContain(name);
    }
  });

  it("every ```ts snippet type-checks against the real packages", () => {
    const options: ts.CompilerOptions = {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      lib: ["lib.es2023.d.ts"],
      types: ["node"],
      strict: true,
      noUncheckedIndexedAccess: true,
      verbatimModuleSyntax: true,
      esModuleInterop: true,
      skipLibCheck: true,
      noEmit: true,
      // The workspace packages' TypeScript source, as vitest resolves them: no stale dist.
      customConditions: ["@credcache/source"],
    };
    const program = ts.createProgram(
      snippets.map((s) => s.file),
      options,
    );
    const problems: string[] = [];
    for (const diagnostic of program.getOptionsDiagnostics()) {
      problems.push(ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n"));
    }
    for (const snippet of snippets) {
      const source = program.getSourceFile(snippet.file);
      if (!source) {
        problems.push(`${snippet.file} was not compiled`);
        continue;
      }
      const diagnostics = [
        ...program.getSyntacticDiagnostics(source),
        ...program.getSemanticDiagnostics(source),
      ];
      for (const diagnostic of diagnostics) {
        const { line } = source.getLineAndCharacterOfPosition(diagnostic.start ?? 0);
        problems.push(
          `docs/porting-from-php.md:${snippet.line + line}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, " ")}`,
        );
      }
    }
    expect(problems).toEqual([]);
  }, 120_000);
});
