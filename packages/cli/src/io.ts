/** Where a command writes and what it reads from its environment. Injected, so tests run in-process. */
export interface CliIo {
  stdout: { write(chunk: string): unknown };
  stderr: { write(chunk: string): unknown };
  /**
   * credcache's own variables (`CREDCACHE_URL`, `CREDCACHE_CONFIG`) and the AWS ones it
   * uses to name keys. The AWS SDK itself always reads `process.env`.
   */
  env: Record<string, string | undefined>;
  /** Base for relative paths such as `--config`. @default process.cwd() */
  cwd?: string;
}

/** {@link CliIo} with every default filled in, as commands receive it. */
export type CommandIo = Required<CliIo>;
