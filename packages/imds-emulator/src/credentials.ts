import { randomBytes, randomInt } from "node:crypto";

/** A source of time in epoch milliseconds. */
export interface Clock {
  now(): number;
}

/** One set of instance-profile credentials, as the emulator holds it. */
export interface CredentialSet {
  accessKeyId: string;
  secretAccessKey: string;
  token: string;
  /** Epoch ms, whole seconds (EC2's `LastUpdated`). */
  issuedAt: number;
  /** Epoch ms, whole seconds (EC2's `Expiration`). */
  expiresAt: number;
}

/** What tests may see of a credential set: no secrets. */
export interface CredentialSummary {
  accessKeyId: string;
  /** When EC2 would say these credentials expire. */
  expiration: Date;
  /** When this set was issued (`LastUpdated`). */
  lastUpdated: Date;
}

const UPPER_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const SECRET_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

export function randomString(alphabet: string, length: number): string {
  let out = "";
  for (let i = 0; i < length; i++) out += alphabet[randomInt(alphabet.length)];
  return out;
}

/** `ASIA` + 16 upper-case alphanumerics, like STS-issued temporary keys. */
export const randomAccessKeyId = (): string => "ASIA" + randomString(UPPER_ALNUM, 16);

/** `AIPA` + 17 upper-case alphanumerics, like an instance profile id. */
export const randomInstanceProfileId = (): string => "AIPA" + randomString(UPPER_ALNUM, 17);

const floorToSecond = (ms: number): number => Math.floor(ms / 1000) * 1000;

/** ISO 8601 without milliseconds, as EC2 writes it: `2026-11-26T15:00:00Z`. */
export const ec2Time = (ms: number): string =>
  new Date(floorToSecond(ms)).toISOString().replace(/\.\d{3}Z$/, "Z");

/**
 * EC2's rotation model: each set lives `lifetimeMs`; a new set is served from
 * `leadMs` before the current one expires. Rotation is lazy (evaluated against
 * the clock on each read), so a compressed or jumping clock just works.
 */
export class CredentialRotation {
  #current: CredentialSet | undefined;

  constructor(
    private readonly lifetimeMs: number,
    private readonly leadMs: number,
    private readonly clock: Clock,
  ) {}

  /** The set EC2 would serve now. */
  current(): CredentialSet {
    const set = this.#current;
    if (set && this.clock.now() < set.expiresAt - this.leadMs) return set;
    return this.rotate();
  }

  /** Issues a new set now, whatever the state of the current one. */
  rotate(): CredentialSet {
    let accessKeyId = randomAccessKeyId();
    while (accessKeyId === this.#current?.accessKeyId) accessKeyId = randomAccessKeyId();
    const issuedAt = floorToSecond(this.clock.now());
    this.#current = {
      accessKeyId,
      secretAccessKey: randomString(SECRET_CHARS, 40),
      token: randomBytes(312).toString("base64"),
      issuedAt,
      expiresAt: issuedAt + Math.ceil(this.lifetimeMs / 1000) * 1000,
    };
    return this.#current;
  }
}

export function summarize(set: CredentialSet): CredentialSummary {
  return {
    accessKeyId: set.accessKeyId,
    expiration: new Date(set.expiresAt),
    lastUpdated: new Date(set.issuedAt),
  };
}

/**
 * The JSON body of `iam/security-credentials/<role>` (and, with `accountId`,
 * of `iam/security-credentials-extended/<role>`). `expiresAt` overrides the
 * set's expiry (the `expired` fault).
 */
export function credentialsDocument(
  set: CredentialSet,
  options: { accountId?: string; expiresAt?: number } = {},
): string {
  return JSON.stringify({
    Code: "Success",
    LastUpdated: ec2Time(set.issuedAt),
    Type: "AWS-HMAC",
    AccessKeyId: set.accessKeyId,
    SecretAccessKey: set.secretAccessKey,
    Token: set.token,
    Expiration: ec2Time(options.expiresAt ?? set.expiresAt),
    ...(options.accountId && { AccountId: options.accountId }),
  });
}

/**
 * A 200 body that is not JSON: the start of a credentials document, cut off
 * before any secret so that it never leaks one.
 */
export function malformedDocument(set: CredentialSet): string {
  return `{"Code":"Success","LastUpdated":"${ec2Time(set.issuedAt)}","Type":"AWS-HMAC","AccessKeyId":"${set.accessKeyId}","Secr`;
}
