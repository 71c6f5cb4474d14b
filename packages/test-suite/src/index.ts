export { createTestClock } from "./clock.js";
export { credentialCacheSuite, suiteGroups } from "./suite.js";
export type {
  Assertion,
  CredentialCacheSuiteOptions,
  ExpectFunction,
  StoreFactory,
  StoreModule,
  SuiteContext,
  SuiteGroup,
  TestClock,
  TestRegistrar,
} from "./types.js";
