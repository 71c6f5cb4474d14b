import { afterAll, expect } from "vitest";
import { captured, issuedSecrets } from "./harness.js";

// Every test file in core records its log lines, events and inspect output in
// `captured`; none of them may contain a secret the fixtures issued.
afterAll(() => {
  const leaks: string[] = [];
  for (const text of captured) {
    for (const secret of issuedSecrets) if (text.includes(secret)) leaks.push(secret.slice(0, 14));
  }
  expect(leaks, "a secret reached a log line, event or inspect output").toEqual([]);
});
