// auth-webhook:
//  (a) Supabase Auth hooks, signed with Standard Webhooks:
//      before_user_created  allow ({}), or reject by the email-domain policy with a
//                           200 carrying {"error":{"http_code":403,"message"}}
//      custom_access_token  adds the role Auth grants the user now as claim
//                           `user_role` (user_sync.auth_role over auth.users, not the
//                           mirror); a soft-deleted or banned user gets none; on any
//                           failure (slow or absent database) the claims go back
//                           unchanged, within the hook's 5 s budget; read-only
//  (b) Database Webhook payloads {type, table, schema, record, old_record} for
//      auth.users, authenticated by the secret key: user_sync.sync_user(id).
// Hooks are retried by Auth with a new webhook-id: every branch is idempotent.
import { z } from "zod";
import { requireService } from "../_shared/auth.ts";
import { ConfigError } from "../_shared/config.ts";
import { isDbUnavailable, literal, sqlState, transaction } from "../_shared/db.ts";
import { HttpError, json, parseInput, parseJson, readJsonText } from "../_shared/http.ts";
import { errorFields } from "../_shared/log.ts";
import { defineFunction, type FunctionContext } from "../_shared/runtime.ts";
import { Uuid } from "../_shared/validation.ts";
import { verifyWebhook, WebhookSignatureError } from "../_shared/webhook_signature.ts";

export const FN = "auth-webhook";

export const CustomAccessTokenPayload = z.object({
  user_id: Uuid,
  claims: z.record(z.string(), z.unknown()),
  authentication_method: z.string().optional(),
});

export const BeforeUserCreatedPayload = z.object({
  metadata: z.object({
    uuid: z.string().optional(),
    time: z.string().optional(),
    name: z.string().optional(),
    ip_address: z.string().optional(),
  }).loose(),
  user: z.object({
    email: z.string().nullish(),
    phone: z.string().nullish(),
  }).loose(),
});

const AuthUserRecord = z.object({ id: Uuid }).loose();
export const DatabaseWebhookPayload = z.object({
  type: z.enum(["INSERT", "UPDATE", "DELETE"]),
  table: z.literal("users"),
  schema: z.literal("auth"),
  record: AuthUserRecord.nullable(),
  old_record: AuthUserRecord.nullable().optional(),
}).superRefine((p, ctx) => {
  if (p.type === "DELETE" && !p.old_record && !p.record) {
    ctx.addIssue({ code: "custom", path: ["old_record"], message: "DELETE needs old_record" });
  }
  if (p.type !== "DELETE" && !p.record) {
    ctx.addIssue({ code: "custom", path: ["record"], message: `${p.type} needs record` });
  }
});

export type EmailPolicyDecision = { allowed: true } | {
  allowed: false;
  reason: "denied_domain" | "domain_not_allowed";
  domain: string;
};

/** Whether `domain` is `listed` or one of its subdomains. */
function domainIn(domain: string, list: readonly string[]): boolean {
  return list.some((d) => domain === d || domain.endsWith(`.${d}`));
}

/**
 * The sign-up email-domain policy: a denied domain (or subdomain) is refused; when an
 * allow-list is set, only its domains (and subdomains) may sign up. Users without an
 * email (phone, anonymous) are not subject to it.
 */
export function emailPolicy(
  email: string | null | undefined,
  allowed: readonly string[],
  denied: readonly string[],
): EmailPolicyDecision {
  if (!email) return { allowed: true };
  const at = email.lastIndexOf("@");
  const domain = email.slice(at + 1).trim().toLowerCase().replace(/\.$/, "");
  if (at < 0 || !domain) return { allowed: false, reason: "domain_not_allowed", domain: "" };
  if (domainIn(domain, denied)) return { allowed: false, reason: "denied_domain", domain };
  if (allowed.length > 0 && !domainIn(domain, allowed)) {
    return { allowed: false, reason: "domain_not_allowed", domain };
  }
  return { allowed: true };
}

function hookReject(httpCode: number, message: string): Response {
  // Auth turns a 4xx from a hook into a generic 500: a rejection travels in a 200.
  return json(200, { error: { http_code: httpCode, message } });
}

function beforeUserCreated(
  ctx: FunctionContext,
  payload: z.infer<typeof BeforeUserCreatedPayload>,
): Response {
  const decision = emailPolicy(
    payload.user.email,
    ctx.config.allowedEmailDomains,
    ctx.config.deniedEmailDomains,
  );
  if (!decision.allowed) {
    ctx.log("info", "sign-up rejected", {
      hook: "before_user_created",
      reason: decision.reason,
      domain: decision.domain,
    });
    return hookReject(403, "Sign-ups from this email domain are not allowed.");
  }
  ctx.log("info", "sign-up allowed", { hook: "before_user_created" });
  return json(200, {});
}

class HookTimeout extends Error {
  constructor() {
    super("role lookup timed out");
    this.name = "HookTimeout";
  }
}

// Past the server's statement_timeout, the client stops waiting too (a database that
// does not answer at all): a few milliseconds for the error to travel.
const CLIENT_GRACE_MS = 250;

/**
 * Auth's role for the user, read within `budgetMs`. The database ends the lookup itself
 * (a local statement_timeout), so the connection goes back to the pool clean. (A
 * client-side cancel is taken by PostgreSQL asynchronously: it could land on the
 * connection's next query, failing someone else's lookup.) A database that does not
 * answer at all is left behind after the grace; its late answer is dropped.
 */
async function authRoleWithin(
  ctx: FunctionContext,
  userId: string,
  budgetMs: number,
): Promise<string | null> {
  const query = transaction(ctx.sql(), budgetMs, [
    `select user_sync.auth_role(${literal.uuid(userId)}) as role`,
  ]);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HookTimeout()), budgetMs + CLIENT_GRACE_MS);
  });
  try {
    const [[row]] = await Promise.race([query, late]);
    return (row?.role as string | null | undefined) ?? null;
  } catch (err) {
    query.catch(() => {}); // left behind: its outcome no longer matters
    throw sqlState(err) === "57014" ? new HookTimeout() : err;
  } finally {
    clearTimeout(timer);
  }
}

async function customAccessToken(
  ctx: FunctionContext,
  payload: z.infer<typeof CustomAccessTokenPayload>,
): Promise<Response> {
  const claims = payload.claims;
  const started = performance.now();
  try {
    // Read-only, with a short budget: Auth gives the hook 5 s in all. Auth's truth,
    // not the mirror (which may lag): null when the user is gone, soft-deleted or banned.
    const role = await authRoleWithin(ctx, payload.user_id, ctx.config.hookTimeoutMs);
    if (role === null) {
      ctx.log("warn", "claims unchanged", {
        hook: "custom_access_token",
        user_id: payload.user_id,
        reason: "auth user missing, soft-deleted or banned",
      });
      return json(200, { claims });
    }
    ctx.log("info", "claims extended", {
      hook: "custom_access_token",
      user_id: payload.user_id,
      user_role: role,
      duration_ms: Math.round(performance.now() - started),
    });
    return json(200, { claims: { ...claims, user_role: role } });
  } catch (err) {
    ctx.log("warn", "claims unchanged", {
      hook: "custom_access_token",
      user_id: payload.user_id,
      reason: err instanceof HookTimeout
        ? "timeout"
        : isDbUnavailable(err)
        ? "database unavailable"
        : "error",
      duration_ms: Math.round(performance.now() - started),
      ...errorFields(err),
    });
    return json(200, { claims });
  }
}

async function handleHook(ctx: FunctionContext, req: Request, body: string): Promise<Response> {
  if (ctx.config.hookSecrets.length === 0) {
    throw new ConfigError(
      ["USER_SYNC_HOOK_SECRET"],
      "Configuration error: missing environment variable: USER_SYNC_HOOK_SECRET",
    );
  }
  try {
    verifyWebhook(body, req.headers, ctx.config.hookSecrets, ctx.now());
  } catch (err) {
    if (err instanceof WebhookSignatureError) {
      ctx.log("warn", "hook signature rejected", { reason: err.reason });
      throw new HttpError(401, "invalid_signature", err.message, { reason: err.reason });
    }
    throw err;
  }
  const payload = parseJson(body);
  const cat = CustomAccessTokenPayload.safeParse(payload);
  if (cat.success) return await customAccessToken(ctx, cat.data);
  const buc = BeforeUserCreatedPayload.safeParse(payload);
  if (buc.success) return beforeUserCreated(ctx, buc.data);
  throw new HttpError(
    400,
    "invalid_input",
    "Unsupported hook payload (expected before_user_created or custom_access_token).",
  );
}

async function handleDatabaseWebhook(
  ctx: FunctionContext,
  req: Request,
  body: string,
): Promise<Response> {
  requireService(await ctx.caller(req));
  const p = parseInput(
    DatabaseWebhookPayload,
    parseJson(body),
    "Invalid Database Webhook payload (auth.users only).",
  );
  const userId = (p.type === "DELETE" ? (p.old_record ?? p.record) : p.record)!.id;
  try {
    const [[row]] = await transaction(ctx.sql(), ctx.config.statementTimeoutMs, [
      `select user_sync.sync_user(${literal.uuid(userId)}) as result`,
    ]);
    const result = row.result as string;
    ctx.log("info", "user synced", { webhook: p.type, user_id: userId, result });
    return json(200, { ok: true, type: p.type, user_id: userId, result });
  } catch (err) {
    if (isDbUnavailable(err)) throw err;
    // sync_user itself failed: record it (healed by the next reconcile) and say so
    await ctx.sql()`select user_sync.record_error(${userId}, ${FN}, ${sqlState(err)}, ${
      err instanceof Error ? err.message : String(err)
    }, ${null}, ${null})`.catch(() => {});
    ctx.log("error", "user sync failed", { webhook: p.type, user_id: userId, ...errorFields(err) });
    throw new HttpError(
      500,
      "sync_failed",
      "The user could not be synced; the error was recorded.",
      { user_id: userId },
    );
  }
}

export const createAuthWebhookHandler = defineFunction({
  name: FN,
  methods: ["POST"],
  async handle(ctx, req) {
    const signed = req.headers.has("webhook-signature") || req.headers.has("webhook-id") ||
      req.headers.has("webhook-timestamp");
    if (!signed) {
      // authenticate before reading a stranger's body
      requireService(await ctx.caller(req));
    }
    const body = await readJsonText(req);
    return signed ? await handleHook(ctx, req, body) : await handleDatabaseWebhook(ctx, req, body);
  },
});
