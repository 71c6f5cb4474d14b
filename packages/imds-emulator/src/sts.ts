import { createHash, randomBytes } from "node:crypto";
import { ec2Time, randomAccessKeyId, randomString } from "./credentials.js";

/** What the emulated STS accepts. Without `roles`, any role ARN is accepted. */
export interface StsOptions {
  /**
   * Roles that exist, by ARN, each with the web identity subjects (`sub` claims) its trust
   * policy allows; no `subjects` = any. A role not listed: `AccessDenied`; a token whose `sub`
   * is not allowed: `AccessDenied`, as STS answers when the trust policy's condition fails.
   */
  roles?: Record<string, { subjects?: string[] }>;
  /** `DurationSeconds` when the request has none. @default 3600 */
  defaultDurationSeconds?: number;
}

/** One STS call as the emulator saw it (no token, no secret). */
export interface StsCall {
  action: "AssumeRole" | "AssumeRoleWithWebIdentity" | string;
  roleArn?: string;
  roleSessionName?: string;
  /** The web identity token's `iss`, `sub` and `aud` (AssumeRoleWithWebIdentity). */
  issuer?: string;
  subject?: string;
  audience?: string;
  /** The first 16 hex chars of the web identity token's SHA-256: tells a rotated token from the last one. */
  tokenDigest?: string;
  policy?: string;
  policyArns?: string[];
  durationSeconds?: number;
  externalId?: string;
  /** The response's HTTP status. */
  status: number;
  /** The access key id issued, when the call succeeded. */
  accessKeyId?: string;
}

/** An STS answer: status and XML body, plus the secrets it carries (for leak scans). */
export interface StsAnswer {
  status: number;
  body: string;
  call: StsCall;
  secrets: string[];
}

const NS = "https://sts.amazonaws.com/doc/2011-06-15/";
const ROLE_ARN = /^arn:aws[a-z-]*:iam::(\d{12}):role\/([\w+=,.@/-]{1,512})$/;
const SESSION_NAME = /^[\w+=,.@-]{2,64}$/;
const SECRET_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

const tag = (name: string, value: string): string => `<${name}>${value}</${name}>`;

/** STS's error document: 400 for the caller's faults and throttling, as STS sends them. */
export function stsError(status: number, code: string, message: string, call: StsCall): StsAnswer {
  const body =
    `<ErrorResponse xmlns="${NS}"><Error><Type>Sender</Type>${tag("Code", code)}${tag("Message", escapeXml(message))}</Error>` +
    `${tag("RequestId", randomBytes(16).toString("hex"))}</ErrorResponse>`;
  return { status, body, call: { ...call, status }, secrets: [] };
}

/** `Throttling: Rate exceeded`, as STS answers a caller over its rate. */
export function throttled(params: URLSearchParams): StsAnswer {
  return stsError(400, "Throttling", "Rate exceeded", { ...describeCall(params), status: 400 });
}

/** The claims of a JWT payload, or undefined when the token is not a JWT. Not verified: an emulator. */
function jwtClaims(token: string): Record<string, unknown> | undefined {
  const payload = token.split(".")[1];
  if (!payload) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
    return typeof claims === "object" && claims !== null ? (claims as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const text = (value: unknown): string | undefined =>
  typeof value === "string" ? value : Array.isArray(value) ? value.join(",") : undefined;

function describeCall(params: URLSearchParams): StsCall {
  const policyArns: string[] = [];
  for (let i = 1; params.has(`PolicyArns.member.${i}.arn`); i++) {
    policyArns.push(params.get(`PolicyArns.member.${i}.arn`)!);
  }
  const claims = jwtClaims(params.get("WebIdentityToken") ?? "");
  const duration = params.get("DurationSeconds");
  const call: StsCall = { action: params.get("Action") ?? "", status: 0 };
  const set = (name: keyof StsCall, value: unknown) => {
    if (value !== undefined && value !== null) (call as unknown as Record<string, unknown>)[name] = value;
  };
  set("roleArn", params.get("RoleArn"));
  set("roleSessionName", params.get("RoleSessionName"));
  set("issuer", text(claims?.iss));
  set("subject", text(claims?.sub));
  set("audience", text(claims?.aud));
  const token = params.get("WebIdentityToken");
  if (token) call.tokenDigest = createHash("sha256").update(token).digest("hex").slice(0, 16);
  set("policy", params.get("Policy"));
  if (policyArns.length > 0) call.policyArns = policyArns;
  set("durationSeconds", duration === null ? undefined : Number(duration));
  set("externalId", params.get("ExternalId"));
  return call;
}

/**
 * Answers one STS query-protocol request (`Action=AssumeRole` or
 * `Action=AssumeRoleWithWebIdentity`, `Version=2011-06-15`) with the XML the SDK's STS
 * client parses. `signed`: whether the request carried a SigV4 Authorization header
 * (AssumeRole needs one; AssumeRoleWithWebIdentity is unsigned).
 */
export function answerSts(
  params: URLSearchParams,
  signed: boolean,
  options: StsOptions,
  now: number,
): StsAnswer {
  const call = describeCall(params);
  const action = call.action;
  if (action !== "AssumeRole" && action !== "AssumeRoleWithWebIdentity") {
    return stsError(400, "InvalidAction", `Could not find operation ${action} for version 2011-06-15`, call);
  }
  if (params.get("Version") !== "2011-06-15") {
    return stsError(400, "InvalidParameterValue", "Version must be 2011-06-15", call);
  }
  const roleArn = call.roleArn ?? "";
  const roleMatch = ROLE_ARN.exec(roleArn);
  if (!roleMatch) return stsError(400, "ValidationError", "RoleArn is not a role ARN", call);
  if (!SESSION_NAME.test(call.roleSessionName ?? "")) {
    return stsError(400, "ValidationError", "RoleSessionName must be 2-64 of [\\w+=,.@-]", call);
  }
  const duration = call.durationSeconds ?? options.defaultDurationSeconds ?? 3600;
  if (!(Number.isInteger(duration) && duration >= 900 && duration <= 43_200)) {
    return stsError(400, "ValidationError", "DurationSeconds must be 900-43200", call);
  }
  const role = options.roles ? options.roles[roleArn] : {};
  if (action === "AssumeRole" && !signed) {
    return stsError(403, "MissingAuthenticationToken", "Request is missing Authentication Token", call);
  }
  if (action === "AssumeRoleWithWebIdentity") {
    const token = params.get("WebIdentityToken") ?? "";
    if (!jwtClaims(token)) return stsError(400, "InvalidIdentityToken", "Token is not a JWT", call);
    if (role?.subjects && !role.subjects.includes(call.subject ?? "")) {
      return stsError(403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity", call);
    }
  }
  if (!role) return stsError(403, "AccessDenied", `Not authorized to perform sts:${action}`, call);

  const accessKeyId = randomAccessKeyId();
  const secretAccessKey = randomString(SECRET_CHARS, 40);
  const sessionToken = randomBytes(256).toString("base64");
  const expiration = ec2Time(now + duration * 1000);
  const [, account, roleName] = roleMatch;
  const credentials = tag(
    "Credentials",
    tag("AccessKeyId", accessKeyId) +
      tag("SecretAccessKey", secretAccessKey) +
      tag("SessionToken", sessionToken) +
      tag("Expiration", expiration),
  );
  const user = tag(
    "AssumedRoleUser",
    tag("Arn", escapeXml(`arn:aws:sts::${account}:assumed-role/${roleName}/${call.roleSessionName}`)) +
      tag(
        "AssumedRoleId",
        `AROA${randomString("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 17)}:${escapeXml(call.roleSessionName!)}`,
      ),
  );
  const extra =
    action === "AssumeRoleWithWebIdentity"
      ? tag("SubjectFromWebIdentityToken", escapeXml(call.subject ?? "")) +
        tag("Audience", escapeXml(call.audience ?? "")) +
        tag("Provider", escapeXml(call.issuer ?? ""))
      : "";
  const body =
    `<${action}Response xmlns="${NS}"><${action}Result>${credentials}${user}${extra}</${action}Result>` +
    `<ResponseMetadata>${tag("RequestId", randomBytes(16).toString("hex"))}</ResponseMetadata></${action}Response>`;
  return {
    status: 200,
    body,
    call: { ...call, status: 200, accessKeyId },
    secrets: [secretAccessKey, sessionToken],
  };
}
