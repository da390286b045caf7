// Standard Webhooks (https://www.standardwebhooks.com), as Supabase Auth signs its
// HTTP hooks: headers webhook-id, webhook-timestamp, webhook-signature; the signature
// is `v1,` + base64(HMAC-SHA256(key, `${id}.${timestamp}.${body}`)).
//
// The HMAC comes from npm `standardwebhooks` (Webhook#sign). Header parsing and the
// timestamp window are ours, so that the clock can be injected (the published example
// vectors are from 2021) and so that both separators seen in the wild are accepted:
// the spec's space (`v1,a v1,b`) and Supabase Auth's `, ` (`v1,a, v1,b`).
import { Webhook } from "standardwebhooks";
import { timingSafeEqual } from "node:crypto";

export const WEBHOOK_TOLERANCE_SECONDS = 5 * 60;

export type SignatureFailure =
  | "missing_headers"
  | "invalid_timestamp"
  | "stale_timestamp"
  | "future_timestamp"
  | "no_matching_signature";

export class WebhookSignatureError extends Error {
  constructor(readonly reason: SignatureFailure, message: string) {
    super(message);
    this.name = "WebhookSignatureError";
  }
}

export interface VerifiedWebhook {
  id: string;
  timestamp: number;
}

/** The `v1,<base64>` signature of a message (the Standard Webhooks `sign`). */
export function signWebhook(
  secret: string,
  id: string,
  timestampSeconds: number,
  body: string,
): string {
  return new Webhook(normaliseSecret(secret)).sign(id, new Date(timestampSeconds * 1000), body);
}

function normaliseSecret(secret: string): string {
  return secret.startsWith("v1,") ? secret.slice(3) : secret;
}

/** Signatures listed in a webhook-signature header, `v1` only. */
export function parseSignatureHeader(header: string): string[] {
  const out: string[] = [];
  for (const token of header.split(/\s+/)) {
    const cleaned = token.replace(/,+$/, "");
    const comma = cleaned.indexOf(",");
    if (comma <= 0) continue;
    if (cleaned.slice(0, comma) !== "v1") continue;
    const sig = cleaned.slice(comma + 1);
    if (sig) out.push(sig);
  }
  return out;
}

function sameBytes(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  return x.byteLength === y.byteLength && timingSafeEqual(x, y);
}

/**
 * Verifies a signed request body against one or more secrets (`whsec_...` or
 * `v1,whsec_...`). Throws WebhookSignatureError; returns the message id and time.
 */
export function verifyWebhook(
  body: string,
  headers: Headers,
  secrets: readonly string[],
  nowMs: number = Date.now(),
  toleranceSeconds: number = WEBHOOK_TOLERANCE_SECONDS,
): VerifiedWebhook {
  const id = headers.get("webhook-id");
  const ts = headers.get("webhook-timestamp");
  const header = headers.get("webhook-signature");
  if (!id || !ts || !header) {
    throw new WebhookSignatureError(
      "missing_headers",
      "Missing webhook-id, webhook-timestamp or webhook-signature header.",
    );
  }
  if (!/^\d{1,12}$/.test(ts.trim())) {
    throw new WebhookSignatureError("invalid_timestamp", "Invalid webhook-timestamp header.");
  }
  const timestamp = Number(ts.trim());
  const now = Math.floor(nowMs / 1000);
  if (now - timestamp > toleranceSeconds) {
    throw new WebhookSignatureError(
      "stale_timestamp",
      "Webhook timestamp is too old (more than 5 minutes).",
    );
  }
  if (timestamp - now > toleranceSeconds) {
    throw new WebhookSignatureError(
      "future_timestamp",
      "Webhook timestamp is too far in the future.",
    );
  }
  const passed = parseSignatureHeader(header);
  let matched = false;
  for (const secret of secrets) {
    const expected = signWebhook(secret, id, timestamp, body).slice(3);
    // check every candidate: no early exit that would reveal which one matched
    for (const sig of passed) if (sameBytes(sig, expected)) matched = true;
  }
  if (!matched) {
    throw new WebhookSignatureError("no_matching_signature", "No matching webhook signature.");
  }
  return { id, timestamp };
}
