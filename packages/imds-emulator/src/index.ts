export type { Clock, CredentialSummary } from "./credentials.js";
export type { ImdsFault, ImdsFaultRoute, ImdsFaults } from "./faults.js";
export type { ImdsEmulator, ImdsEmulatorOptions, ImdsRoute, ImdsStats } from "./server.js";
export { startImdsEmulator } from "./server.js";
export type { StsCall, StsOptions } from "./sts.js";
