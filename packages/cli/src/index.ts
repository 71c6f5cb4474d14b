export { CliError, CommandFailedError, UsageError } from "./errors.js";
export type { CliIo } from "./io.js";
export { main } from "./main.js";
export type { KeyListing, Pruning } from "./store.js";
