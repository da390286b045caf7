// Configuration: read once from the environment and validated with zod. A missing or
// malformed variable yields a ConfigError that names the variable (never its value).
//
// Provided by the Supabase platform:
//   SUPABASE_URL, SUPABASE_DB_URL, SUPABASE_SECRET_KEYS / SUPABASE_PUBLISHABLE_KEYS
//   (new API keys, JSON objects), SUPABASE_SERVICE_ROLE_KEY / SUPABASE_ANON_KEY
//   (legacy JWT keys), SUPABASE_JWKS (public keys for user JWTs).
// Our own settings are all named USER_SYNC_*.
import { z } from "zod";
import { postgresDuration } from "./validation.ts";

export type EnvReader = (name: string) => string | undefined;
export type EnvInput = EnvReader | Record<string, string | undefined>;

export function envReader(input?: EnvInput): EnvReader {
  if (!input) return (name) => Deno.env.get(name);
  if (typeof input === "function") return input;
  return (name) => input[name];
}

export class ConfigError extends Error {
  constructor(readonly variables: string[], message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

export interface Config {
  /** Project URL: Supabase Auth lives at `${supabaseUrl}/auth/v1`. */
  supabaseUrl: string;
  /** Database URL actually used (pooler override or SUPABASE_DB_URL). */
  dbUrl: string;
  dbUrlVariable: "USER_SYNC_DB_POOLER_URL" | "SUPABASE_DB_URL";
  /** Every key that identifies a trusted server caller (secret keys, service_role key). */
  secretKeys: string[];
  /** The key create-user sends to Supabase Auth's admin API. */
  authAdminKey: string;
  /** Public keys (anon / publishable): they identify the app, not a user. */
  publicKeys: string[];
  /** Legacy HS256 JWT secret, when given: user JWTs are then verified locally. */
  jwtSecret?: string;
  /** Inline JWKS (SUPABASE_JWKS); otherwise fetched from Auth's well-known URL. */
  jwks?: { keys: Record<string, unknown>[] };
  /** Standard Webhooks secrets (base64 part after `v1,whsec_`), several for rotation. */
  hookSecrets: string[];
  allowedEmailDomains: string[];
  deniedEmailDomains: string[];
  /** Budget of the custom_access_token role lookup. */
  hookTimeoutMs: number;
  /** statement_timeout of short queries (admin check, sync_user, lookups). */
  statementTimeoutMs: number;
  /** statement_timeout of a reconcile run (the platform may cap statements). */
  reconcileStatementTimeout: string;
  /** How long one sync-all POST keeps driving bounded reconcile calls (under the platform's 150 s). */
  syncAllBudgetMs: number;
  /** Budget of each bounded reconcile call (its transaction holds rows it wrote this long). */
  reconcileCallMs: number;
  /** Allowed browser origins, or "*" for any. */
  corsOrigins: "*" | string[];
}

/** Every variable the functions read, with its meaning and default (for docs/tests). */
export const ENV_VARIABLES = {
  SUPABASE_URL: "Project URL (platform-provided).",
  SUPABASE_DB_URL: "Direct Postgres URL (platform-provided).",
  SUPABASE_SECRET_KEYS: "JSON object of secret API keys (platform-provided, new keys).",
  SUPABASE_SERVICE_ROLE_KEY: "Legacy service_role JWT key (platform-provided).",
  SUPABASE_PUBLISHABLE_KEYS: "JSON object of publishable keys (platform-provided, new keys).",
  SUPABASE_ANON_KEY: "Legacy anon JWT key (platform-provided).",
  SUPABASE_JWKS: "JSON Web Key Set verifying user JWTs (platform-provided).",
  SUPABASE_JWT_SECRET: "Legacy JWT secret, if the runtime provides it.",
  USER_SYNC_JWT_SECRET:
    "Legacy HS256 JWT secret (optional; else HS256 tokens are checked by Auth).",
  USER_SYNC_DB_POOLER_URL: "Overrides SUPABASE_DB_URL, e.g. the Supavisor transaction pooler.",
  USER_SYNC_HOOK_SECRET: "Auth hook secret(s) `v1,whsec_...`, several separated by `|`.",
  USER_SYNC_ALLOWED_EMAIL_DOMAINS: "Comma-separated domains allowed to sign up (empty: all).",
  USER_SYNC_DENIED_EMAIL_DOMAINS: "Comma-separated domains refused at sign-up.",
  USER_SYNC_HOOK_TIMEOUT_MS: "custom_access_token role lookup budget in ms (default 1500).",
  USER_SYNC_STATEMENT_TIMEOUT_MS: "statement_timeout of short queries in ms (default 8000).",
  USER_SYNC_RECONCILE_STATEMENT_TIMEOUT: "statement_timeout of a reconcile run (default 10min).",
  USER_SYNC_CORS_ALLOWED_ORIGINS: "Comma-separated browser origins, or * (default *).",
  USER_SYNC_SYNC_ALL_BUDGET_MS:
    "How long one sync-all POST drives reconcile calls, in ms (default 120000, at most 140000).",
  USER_SYNC_RECONCILE_CALL_MS:
    "Budget of each reconcile call sync-all makes, in ms (default 1000, 100 to 2000).",
} as const;

const blank = (
  v: string | undefined,
) => (v === undefined || v.trim() === "" ? undefined : v.trim());

const jsonKeys = z
  .string()
  .transform((text, ctx) => {
    try {
      const parsed = JSON.parse(text);
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) {
        const values = Object.values(parsed as Record<string, unknown>);
        if (values.every((v) => typeof v === "string" && v.length > 0)) return values as string[];
      }
    } catch {
      // fall through
    }
    ctx.addIssue({ code: "custom", message: "must be a JSON object of non-empty strings" });
    return z.NEVER;
  });

const httpUrl = z.string().refine((v) => {
  try {
    const u = new URL(v);
    return u.protocol === "http:" || u.protocol === "https:";
  } catch {
    return false;
  }
}, "must be an http(s) URL");

const postgresUrl = z.string().refine((v) => {
  try {
    const u = new URL(v);
    return u.protocol === "postgres:" || u.protocol === "postgresql:";
  } catch {
    return false;
  }
}, "must be a postgres:// or postgresql:// URL");

const hookSecrets = z.string().transform((text, ctx) => {
  const out: string[] = [];
  for (const raw of text.split("|").map((s) => s.trim()).filter(Boolean)) {
    const m = /^(?:v1,)?whsec_([A-Za-z0-9+/]+={0,2})$/.exec(raw);
    if (!m || atobSafe(m[1]) === 0) {
      ctx.addIssue({
        code: "custom",
        message: "must be `v1,whsec_<base64>` (several separated by |)",
      });
      return z.NEVER;
    }
    out.push(`whsec_${m[1]}`);
  }
  if (out.length === 0) {
    ctx.addIssue({ code: "custom", message: "must name at least one secret" });
    return z.NEVER;
  }
  return out;
});

function atobSafe(b64: string): number {
  try {
    return atob(b64).length;
  } catch {
    return 0;
  }
}

const DOMAIN = /^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$/;
const domainList = z.string().transform((text, ctx) => {
  const items = text.split(/[\s,]+/).map((d) => d.trim().toLowerCase().replace(/^@/, "")).filter(
    Boolean,
  );
  for (const d of items) {
    if (!DOMAIN.test(d)) {
      ctx.addIssue({ code: "custom", message: "must be a comma-separated list of domains" });
      return z.NEVER;
    }
  }
  return [...new Set(items)];
});

const intInRange = (min: number, max: number) =>
  z.string().regex(/^\d+$/, "must be a whole number of milliseconds").transform(Number).pipe(
    z.number().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`),
  );

const schema = z.object({
  SUPABASE_URL: httpUrl.optional(),
  SUPABASE_DB_URL: postgresUrl.optional(),
  USER_SYNC_DB_POOLER_URL: postgresUrl.optional(),
  SUPABASE_SECRET_KEYS: jsonKeys.optional(),
  SUPABASE_SERVICE_ROLE_KEY: z.string().min(20, "is too short to be a key").optional(),
  SUPABASE_PUBLISHABLE_KEYS: jsonKeys.optional(),
  SUPABASE_ANON_KEY: z.string().optional(),
  SUPABASE_JWKS: z.string().transform((text, ctx) => {
    try {
      const parsed = JSON.parse(text);
      const keys = Array.isArray(parsed) ? parsed : parsed?.keys;
      if (Array.isArray(keys) && keys.every((k) => k && typeof k === "object")) {
        return { keys: keys as Record<string, unknown>[] };
      }
    } catch {
      // fall through
    }
    ctx.addIssue({ code: "custom", message: "must be a JSON Web Key Set" });
    return z.NEVER;
  }).optional(),
  USER_SYNC_JWT_SECRET: z.string().min(32, "must be at least 32 characters").optional(),
  SUPABASE_JWT_SECRET: z.string().min(32, "must be at least 32 characters").optional(),
  USER_SYNC_HOOK_SECRET: hookSecrets.optional(),
  USER_SYNC_ALLOWED_EMAIL_DOMAINS: domainList.optional(),
  USER_SYNC_DENIED_EMAIL_DOMAINS: domainList.optional(),
  USER_SYNC_HOOK_TIMEOUT_MS: intInRange(100, 4000).optional(),
  USER_SYNC_STATEMENT_TIMEOUT_MS: intInRange(100, 600000).optional(),
  USER_SYNC_RECONCILE_STATEMENT_TIMEOUT: z.string().transform((text, ctx) => {
    const duration = postgresDuration(text);
    if (duration !== null) return duration;
    ctx.addIssue({
      code: "custom",
      message: "must be a Postgres duration such as 10min, 600s or 600000 (at most 2147483647 ms)",
    });
    return z.NEVER;
  }).optional(),
  USER_SYNC_CORS_ALLOWED_ORIGINS: z.string().optional(),
  // The platform cuts a request at 150 s; a call may overrun its budget by 1.5 s.
  USER_SYNC_SYNC_ALL_BUDGET_MS: intInRange(1000, 140000).optional(),
  USER_SYNC_RECONCILE_CALL_MS: intInRange(100, 2000).optional(),
});

/**
 * Reads and validates the configuration. Throws ConfigError naming every missing or
 * invalid variable. Values never appear in messages.
 */
export function loadConfig(input?: EnvInput): Config {
  const read = envReader(input);
  const raw: Record<string, string | undefined> = {};
  for (const name of Object.keys(schema.shape)) raw[name] = blank(read(name));

  const parsed = schema.safeParse(raw);
  const invalid: string[] = [];
  const problems: string[] = [];
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const name = String(issue.path[0]);
      if (!invalid.includes(name)) {
        invalid.push(name);
        problems.push(`${name} ${issue.message}`);
      }
    }
  }
  const missing: string[] = [];
  const v = parsed.success ? parsed.data : undefined;
  if (!raw.SUPABASE_URL) missing.push("SUPABASE_URL");
  if (!raw.SUPABASE_DB_URL && !raw.USER_SYNC_DB_POOLER_URL) missing.push("SUPABASE_DB_URL");
  if (!raw.SUPABASE_SECRET_KEYS && !raw.SUPABASE_SERVICE_ROLE_KEY) {
    missing.push("SUPABASE_SECRET_KEYS or SUPABASE_SERVICE_ROLE_KEY");
  }
  if (missing.length || !v) {
    const parts: string[] = [];
    if (missing.length) {
      parts.push(
        `missing environment variable${missing.length > 1 ? "s" : ""}: ${missing.join(", ")}`,
      );
    }
    if (problems.length) parts.push(`invalid: ${problems.join("; ")}`);
    throw new ConfigError([...missing, ...invalid], `Configuration error: ${parts.join("; ")}`);
  }

  const secretKeys = [...(v.SUPABASE_SECRET_KEYS ?? [])];
  if (v.SUPABASE_SERVICE_ROLE_KEY) secretKeys.push(v.SUPABASE_SERVICE_ROLE_KEY);
  const publicKeys = [...(v.SUPABASE_PUBLISHABLE_KEYS ?? [])];
  if (v.SUPABASE_ANON_KEY) publicKeys.push(v.SUPABASE_ANON_KEY);
  const origins = (v.USER_SYNC_CORS_ALLOWED_ORIGINS ?? "*").split(",").map((s) => s.trim())
    .filter(Boolean);

  return {
    supabaseUrl: v.SUPABASE_URL!.replace(/\/+$/, ""),
    dbUrl: (v.USER_SYNC_DB_POOLER_URL ?? v.SUPABASE_DB_URL)!,
    dbUrlVariable: v.USER_SYNC_DB_POOLER_URL ? "USER_SYNC_DB_POOLER_URL" : "SUPABASE_DB_URL",
    secretKeys,
    // Prefer the new secret key (the legacy JWT keys are being retired).
    authAdminKey: secretKeys[0],
    publicKeys,
    jwtSecret: v.USER_SYNC_JWT_SECRET ?? v.SUPABASE_JWT_SECRET,
    jwks: v.SUPABASE_JWKS,
    hookSecrets: v.USER_SYNC_HOOK_SECRET ?? [],
    allowedEmailDomains: v.USER_SYNC_ALLOWED_EMAIL_DOMAINS ?? [],
    deniedEmailDomains: v.USER_SYNC_DENIED_EMAIL_DOMAINS ?? [],
    hookTimeoutMs: v.USER_SYNC_HOOK_TIMEOUT_MS ?? 1500,
    statementTimeoutMs: v.USER_SYNC_STATEMENT_TIMEOUT_MS ?? 8000,
    reconcileStatementTimeout: v.USER_SYNC_RECONCILE_STATEMENT_TIMEOUT ?? "10min",
    syncAllBudgetMs: v.USER_SYNC_SYNC_ALL_BUDGET_MS ?? 120_000,
    reconcileCallMs: v.USER_SYNC_RECONCILE_CALL_MS ?? 1000,
    corsOrigins: origins.length === 0 || origins.includes("*") ? "*" : origins,
  };
}
