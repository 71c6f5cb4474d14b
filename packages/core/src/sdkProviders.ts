import type { AwsCredentialIdentity, AwsCredentialIdentityProvider, Logger } from "@smithy/types";
import { MissingAdapterError } from "./errors.js";

export type CredentialProvidersModule = typeof import("@aws-sdk/credential-providers");

let sdkProviders: Promise<CredentialProvidersModule> | undefined;

/** `@aws-sdk/credential-providers` is an optional peer: load it only when a preset fetches. */
function loadSdkProviders(): Promise<CredentialProvidersModule> {
  sdkProviders ??= import("@aws-sdk/credential-providers").catch((cause) => {
    sdkProviders = undefined;
    throw new MissingAdapterError("@aws-sdk/credential-providers", "preset", { cause });
  });
  return sdkProviders;
}

/** A provider created on first use from the lazily loaded SDK module, then reused. */
export function lazyProvider(
  create: (sdk: CredentialProvidersModule) => AwsCredentialIdentityProvider,
): AwsCredentialIdentityProvider {
  let created: AwsCredentialIdentityProvider | undefined;
  return async (properties?: Record<string, unknown>): Promise<AwsCredentialIdentity> => {
    created ??= create(await loadSdkProviders());
    return created(properties);
  };
}

/**
 * The logger handed to the SDK: its debug, warn and error lines, never info. SDK clients (STS
 * for assume-role and role profiles) log every command's output at info, and AssumeRole's
 * session token is not marked sensitive there: it would reach the caller's logger in clear.
 */
export function sdkLogger(logger: Logger | undefined): { logger: Logger } | Record<string, never> {
  if (!logger) return {};
  return {
    logger: {
      debug: (...content) => logger.debug(...content),
      info: () => {},
      warn: (...content) => logger.warn(...content),
      error: (...content) => logger.error(...content),
    },
  };
}
