// create-user: creates the auth user through Supabase Auth's admin API (the role
// goes to app_metadata, where only the service role can write), then makes sure the
// profile exists (user_sync.sync_user) before answering 201 {user: <profile>}.
// If Auth succeeded but the profile could not be confirmed, the answer (503,
// code profile_not_confirmed, with the user id) and user_sync.errors say so.
import { createClient, isAuthApiError, isAuthRetryableFetchError } from "@supabase/supabase-js";
import { z } from "zod";
import { requireServiceOrAdmin } from "../_shared/auth.ts";
import { sqlState } from "../_shared/db.ts";
import { HttpError, json, parseInput, readJson } from "../_shared/http.ts";
import { errorFields } from "../_shared/log.ts";
import { syncProfile } from "../_shared/profile.ts";
import { defineFunction, type FunctionContext } from "../_shared/runtime.ts";
import { AvatarUrl, ProfileName } from "../_shared/validation.ts";

export const FN = "create-user";

/**
 * Bound on each call to Supabase Auth's admin API. supabase-js sets no timeout of its
 * own: an Auth that accepts the connection but never answers would hold the request
 * until the platform's wall-clock limit kills it (no JSON answer). Past this bound the
 * call is aborted and answered 503 `auth_unavailable`.
 */
export const AUTH_TIMEOUT_MS = 10_000;

function withTimeout(fetchImpl: typeof fetch, ms: number): typeof fetch {
  return (input, init = {}) => {
    const timeout = AbortSignal.timeout(ms);
    const signal = init.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
    return fetchImpl(input, { ...init, signal });
  };
}

export const CreateUserBody = z.strictObject({
  email: z.email().max(255).optional(),
  phone: z.string().regex(/^\+?[1-9]\d{6,14}$/, "must be an E.164 phone number").optional(),
  password: z.string().min(6).max(72).optional(),
  email_confirm: z.boolean().optional(),
  phone_confirm: z.boolean().optional(),
  name: ProfileName.optional(),
  avatar_url: AvatarUrl.optional(),
  role: z.string().regex(/^[a-z][a-z0-9_]{0,39}$/, "must be a role name").optional(),
  // Auth stores user_metadata as jsonb, which cannot hold U+0000 (Auth would fail with
  // a 500 and we would answer 503 "try again" to an input that can never succeed).
  user_metadata: z.record(z.string(), z.unknown()).refine(
    // JSON.stringify writes U+0000 as \u0000 after an even number of backslashes
    (v) => !/(?:^|[^\\])(?:\\\\)*\\u0000/.test(JSON.stringify(v)),
    "must not contain the character U+0000",
  ).optional(),
}).refine((b) => b.email !== undefined || b.phone !== undefined, {
  message: "email or phone is required",
  path: ["email"],
});
export type CreateUserInput = z.infer<typeof CreateUserBody>;

export const createCreateUserHandler = defineFunction({
  name: FN,
  methods: ["POST"],
  async handle(ctx, req) {
    const caller = await ctx.caller(req);
    requireServiceOrAdmin(caller);

    const input = parseInput(CreateUserBody, await readJson(req));

    if (input.role !== undefined || input.name !== undefined) {
      const [known] = await ctx.sql()<{ role_ok: boolean; name_max_length: number }[]>`
        select exists (select 1 from user_sync.roles where role = ${input.role ?? null}) as role_ok,
               (select name_max_length from user_sync.config) as name_max_length`;
      const issues = [];
      if (input.role !== undefined && !known.role_ok) {
        issues.push({
          path: "role",
          code: "unknown_role",
          message: "is not a known role (user_sync.roles)",
        });
      }
      if (input.name !== undefined && [...input.name].length > known.name_max_length) {
        issues.push({
          path: "name",
          code: "too_big",
          message:
            `must be at most ${known.name_max_length} characters (user_sync.config.name_max_length)`,
        });
      }
      if (issues.length) throw new HttpError(400, "invalid_input", "Invalid request body.", issues);
    }

    const userMetadata: Record<string, unknown> = { ...(input.user_metadata ?? {}) };
    // full_name is the first source of the profile name; avatar_url of the avatar.
    if (input.name !== undefined) userMetadata.full_name = input.name;
    if (input.avatar_url !== undefined) userMetadata.avatar_url = input.avatar_url;

    const auth = createClient(ctx.config.supabaseUrl, ctx.config.authAdminKey, {
      auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
      global: { fetch: withTimeout(ctx.fetch, AUTH_TIMEOUT_MS) },
    });
    const { data, error } = await auth.auth.admin.createUser({
      email: input.email,
      phone: input.phone,
      password: input.password,
      email_confirm: input.email_confirm,
      phone_confirm: input.phone_confirm,
      user_metadata: userMetadata,
      app_metadata: input.role !== undefined ? { role: input.role } : undefined,
    });
    if (error || !data.user) throw authFailure(ctx, error);
    const userId = data.user.id;
    ctx.log("info", "auth user created", { user_id: userId, role: input.role ?? null });

    try {
      const { result, profile } = await syncProfile(ctx, userId);
      if (!profile) {
        throw Object.assign(new Error("profile missing after user_sync.sync_user"), {
          code: "P0002",
        });
      }
      ctx.log("info", "user created", { user_id: userId, profile: result });
      return json(201, { user: profile });
    } catch (err) {
      const state = sqlState(err) ?? (err as { code?: unknown })?.code;
      const message = err instanceof Error ? err.message : String(err);
      let recorded = false;
      try {
        await ctx.sql()`select user_sync.record_error(${userId}, ${FN}, ${
          typeof state === "string" ? state : null
        }, ${`profile not confirmed after Auth created the user: ${message}`}, ${null}, ${null})`;
        recorded = true;
      } catch (recordErr) {
        ctx.log("error", "error not recorded", { user_id: userId, ...errorFields(recordErr) });
      }
      ctx.log("error", "profile not confirmed", { user_id: userId, recorded, ...errorFields(err) });
      throw new HttpError(
        503,
        "profile_not_confirmed",
        "The auth user was created but its profile could not be confirmed; the next reconcile will create it.",
        { user_id: userId, auth_user_created: true, error_recorded: recorded },
      );
    }
  },
});

/** Maps an Auth admin API failure to our contract. */
function authFailure(ctx: FunctionContext, error: unknown): HttpError {
  if (isAuthRetryableFetchError(error)) {
    ctx.log("error", "auth unavailable", errorFields(error));
    return new HttpError(503, "auth_unavailable", "Supabase Auth is unreachable; try again later.");
  }
  if (isAuthApiError(error)) {
    const code = error.code ?? "";
    if (
      ["email_exists", "phone_exists", "user_already_exists", "identity_already_exists"].includes(
        code,
      )
    ) {
      return new HttpError(409, "conflict", "A user with this email or phone already exists.", {
        auth_code: code,
      });
    }
    if (
      error.status === 401 ||
      (error.status === 403 && ["not_admin", "bad_jwt", "no_authorization"].includes(code))
    ) {
      ctx.log("error", "auth rejected the service key", errorFields(error));
      return new HttpError(
        503,
        "auth_unavailable",
        "Supabase Auth rejected the function's service key.",
      );
    }
    if (error.status === 403) {
      return new HttpError(403, "forbidden", error.message, { auth_code: code || undefined });
    }
    if (error.status >= 400 && error.status < 500) {
      return new HttpError(400, "invalid_input", error.message, { auth_code: code || undefined });
    }
    ctx.log("error", "auth error", errorFields(error));
    return new HttpError(503, "auth_unavailable", "Supabase Auth failed; try again later.");
  }
  ctx.log("error", "auth error", errorFields(error));
  return new HttpError(503, "auth_unavailable", "Supabase Auth failed; try again later.");
}
