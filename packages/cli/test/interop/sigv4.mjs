import { createHash, createHmac } from "node:crypto";

/**
 * Checks a request's AWS Signature Version 4 against one credential set, as SQS would:
 * the access key id named in the Authorization header, the session token header, and the
 * signature itself (which only the exact secret key reproduces). Returns why it fails, or
 * `undefined` when it is good. Written from the SigV4 spec, so nothing of the client's
 * signer is reused to check it.
 */
export function sigv4Problem(req, body, credentials) {
  const auth =
    /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(
      req.headers.authorization ?? "",
    );
  if (!auth) return "no SigV4 Authorization header";
  const [, keyId, day, region, service, signedHeaders, signature] = auth;
  if (keyId !== credentials.AccessKeyId) return "signed with another access key id";
  if (credentials.Token && req.headers["x-amz-security-token"] !== credentials.Token) {
    return "the session token header is not the set's token";
  }
  const amzDate = req.headers["x-amz-date"];
  if (typeof amzDate !== "string" || !amzDate.startsWith(day)) return "no X-Amz-Date of the signing day";
  const url = new URL(req.url, "http://localhost");
  const query = [...url.searchParams]
    .map(([k, v]) => [encode(k), encode(v)])
    .sort(([a, x], [b, y]) => (a === b ? (x < y ? -1 : 1) : a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
  const headers = signedHeaders
    .split(";")
    .map(
      (name) =>
        `${name}:${String(req.headers[name] ?? "")
          .trim()
          .replace(/\s+/g, " ")}\n`,
    )
    .join("");
  const path = url.pathname
    .split("/")
    .map((segment) => encode(encode(decodeURIComponent(segment))))
    .join("/");
  const canonical = [req.method, path, query, headers, signedHeaders, sha256(body)].join("\n");
  const scope = `${day}/${region}/${service}/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, sha256(canonical)].join("\n");
  let key = `AWS4${credentials.SecretAccessKey}`;
  for (const part of [day, region, service, "aws4_request"]) key = hmac(key, part);
  const expected = createHmac("sha256", key).update(toSign).digest("hex");
  return expected === signature ? undefined : "the signature does not match the set's secret key";
}

function encode(text) {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

function sha256(data) {
  return createHash("sha256").update(data).digest("hex");
}

function hmac(key, data) {
  return createHmac("sha256", key).update(data).digest();
}
