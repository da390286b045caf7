// LOCAL PLATFORM (development and tests only; never deployed): a stand-in for the hosted platform.
// A stand-in for Supabase Auth's HTTP API (GoTrue), serving just what our functions
// and tests use, driven by the real supabase-js client:
//   POST /auth/v1/signup                      (email/phone + password, or anonymous)
//   POST /auth/v1/token?grant_type=password   (and refresh_token)
//   GET  /auth/v1/user, PUT /auth/v1/user, POST /auth/v1/logout
//   POST /auth/v1/admin/users, GET|PUT|DELETE /auth/v1/admin/users/:id
//   GET  /auth/v1/.well-known/jwks.json
// It writes real rows into auth.users / auth.identities as supabase_auth_admin (whose
// search_path is `auth`, hence the unqualified names, as GoTrue does), so the real
// user_sync trigger runs; issues GoTrue-shaped JWTs; answers errors in GoTrue's
// 2024-01-01 API format ({code, message}); and, when configured, calls the
// before_user_created and custom_access_token HTTP hooks signed with Standard
// Webhooks, as Auth does (the access-token hook inside the sign-in transaction).
import postgres from "postgres";
import {
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  type JWK,
  type JWTPayload,
  jwtVerify,
  type KeyObject,
  SignJWT,
} from "jose";
import { signWebhook } from "../supabase/functions/_shared/webhook_signature.ts";
import { withCredentials } from "./local.ts";

type Sql = postgres.Sql<Record<string, never>>;
type Json = Record<string, unknown>;

export interface AuthStandInOptions {
  /** Database URL of `postgres` (used for bcrypt through pgcrypto). */
  dbUrl: string;
  /** Public base URL (the gateway's), for the `iss` claim. */
  publicUrl: () => string;
  jwtSecret: string;
  /** Sign user tokens with HS256 (the JWT secret) or ES256 (a key served in the JWKS). */
  jwtAlg?: "HS256" | "ES256";
  /** Secret that signs the Auth hooks (`v1,whsec_...`); URLs are set by setHookUrls. */
  hookSecret?: string;
  /** Access token lifetime in seconds. */
  jwtExpiry?: number;
}

interface UserRow {
  id: string;
  aud: string | null;
  role: string | null;
  email: string | null;
  encrypted_password: string | null;
  email_confirmed_at: Date | null;
  phone: string | null;
  phone_confirmed_at: Date | null;
  confirmation_sent_at: Date | null;
  confirmed_at: Date | null;
  last_sign_in_at: Date | null;
  raw_app_meta_data: Json | null;
  raw_user_meta_data: Json | null;
  created_at: Date | null;
  updated_at: Date | null;
  banned_until: Date | null;
  deleted_at: Date | null;
  is_anonymous: boolean;
}

interface IdentityRow {
  id: string;
  provider_id: string;
  user_id: string;
  identity_data: Json;
  provider: string;
  last_sign_in_at: Date | null;
  created_at: Date | null;
  updated_at: Date | null;
  email: string | null;
}

class AuthError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Json = {},
  ) {
    super(message);
  }
}

const INSTANCE_ID = "00000000-0000-0000-0000-000000000000";
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/** The claims a custom_access_token hook must keep; Auth refuses its output without them. */
export const REQUIRED_ACCESS_TOKEN_CLAIMS: readonly string[] = [
  "aud",
  "exp",
  "iat",
  "sub",
  "email",
  "phone",
  "role",
  "aal",
  "session_id",
  "is_anonymous",
];

function respond(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", "x-supabase-api-version": "2024-01-01" },
  });
}

function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string })?.code === "23505";
}

function mergeMetadata(base: Json | null, changes: Json): Json {
  const out: Json = { ...(base ?? {}) };
  for (const [k, v] of Object.entries(changes)) {
    if (v === null) delete out[k];
    else out[k] = v;
  }
  return out;
}

function parseDuration(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim());
  if (!m) return null;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as "ms" | "s" | "m" | "h"];
  return Number(m[1]) * unit;
}

export class AuthStandIn {
  readonly #auth: Sql;
  readonly #pg: Sql;
  readonly #opts: AuthStandInOptions;
  readonly #secretKey: Uint8Array;
  readonly #refresh = new Map<string, { userId: string; sessionId: string }>();
  #es256?: { privateKey: CryptoKey | KeyObject; publicJwk: JWK; kid: string };
  /** Every access/refresh token handed out (tests check that none is ever logged). */
  readonly issuedTokens = new Set<string>();
  #hookUrls: { beforeUserCreated?: string; customAccessToken?: string } = {};

  constructor(opts: AuthStandInOptions) {
    this.#opts = opts;
    this.#secretKey = new TextEncoder().encode(opts.jwtSecret);
    const common = { prepare: false, max: 6, idle_timeout: 10, onnotice: () => {} };
    // Supabase Auth connects as supabase_auth_admin (search_path = auth).
    this.#auth = postgres(withCredentials(opts.dbUrl, "supabase_auth_admin", "postgres"), {
      ...common,
      connection: { application_name: "auth-standin" },
    }) as unknown as Sql;
    this.#pg = postgres(opts.dbUrl, {
      ...common,
      max: 2,
      connection: { application_name: "auth-standin-crypt" },
    }) as unknown as Sql;
  }

  async init(): Promise<void> {
    if ((this.#opts.jwtAlg ?? "HS256") === "ES256") {
      const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
      const kid = crypto.randomUUID();
      const publicJwk = {
        ...(await exportJWK(publicKey)),
        kid,
        alg: "ES256",
        use: "sig",
        key_ops: ["verify"],
      };
      this.#es256 = { privateKey, publicJwk, kid };
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.#auth.end({ timeout: 2 }), this.#pg.end({ timeout: 2 })]);
  }

  /** Enables the HTTP hooks, like [auth.hook.*] in config.toml (undefined: off). */
  setHookUrls(urls: { beforeUserCreated?: string; customAccessToken?: string }): void {
    if ((urls.beforeUserCreated || urls.customAccessToken) && !this.#opts.hookSecret) {
      throw new Error("hook URLs need hookSecret");
    }
    this.#hookUrls = { ...urls };
  }

  get jwks(): { keys: JWK[] } {
    return { keys: this.#es256 ? [this.#es256.publicJwk] : [] };
  }

  /** Handles /auth/v1/... requests. */
  async handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const path = url.pathname.replace(/^\/auth\/v1/, "").replace(/\/+$/, "") || "/";
    try {
      const m = req.method;
      if (m === "GET" && (path === "/.well-known/jwks.json" || path === "/jwks")) {
        return respond(200, this.jwks);
      }
      if (m === "GET" && path === "/health") {
        return respond(200, { name: "GoTrue (user-sync stand-in)", version: "test" });
      }
      if (m === "POST" && path === "/signup") return await this.#signup(req);
      if (m === "POST" && path === "/token") {
        return await this.#token(req, url.searchParams.get("grant_type"));
      }
      if (m === "GET" && path === "/user") {
        return respond(200, await this.#userJson(await this.#sessionUser(req)));
      }
      if (m === "PUT" && path === "/user") return await this.#updateSelf(req);
      if (m === "POST" && path === "/logout") {
        await this.#sessionUser(req);
        return new Response(null, { status: 204 });
      }
      if (path === "/admin/users" && m === "POST") {
        await this.#requireAdmin(req);
        return await this.#adminCreate(req);
      }
      const adminUser = /^\/admin\/users\/([0-9a-f-]{36})$/i.exec(path);
      if (adminUser) {
        await this.#requireAdmin(req);
        const id = adminUser[1].toLowerCase();
        if (m === "GET") return respond(200, await this.#userJson(await this.#findUser(id)));
        if (m === "PUT") return await this.#adminUpdate(req, id);
        if (m === "DELETE") return await this.#adminDelete(req, id);
      }
      throw new AuthError(404, "not_found", "Not found");
    } catch (err) {
      if (err instanceof AuthError) {
        return respond(err.status, { code: err.code, message: err.message, ...err.extra });
      }
      console.error("auth stand-in: unexpected error", err instanceof Error ? err.message : err);
      return respond(500, { code: "unexpected_failure", message: "Unexpected failure" });
    }
  }

  // -------------------------------------------------------------------------
  // tokens
  // -------------------------------------------------------------------------
  async #sign(claims: JWTPayload): Promise<string> {
    if (this.#es256) {
      return await new SignJWT(claims).setProtectedHeader({
        alg: "ES256",
        kid: this.#es256.kid,
        typ: "JWT",
      })
        .sign(this.#es256.privateKey);
    }
    return await new SignJWT(claims).setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(
      this.#secretKey,
    );
  }

  async #verify(token: string): Promise<JWTPayload> {
    try {
      const { alg } = decodeProtectedHeader(token);
      if (alg === "HS256") {
        return (await jwtVerify(token, this.#secretKey, { algorithms: ["HS256"] })).payload;
      }
      if (alg === "ES256" && this.#es256) {
        return (await jwtVerify(token, this.#es256.publicJwk, { algorithms: ["ES256"] })).payload;
      }
    } catch {
      // fall through
    }
    throw new AuthError(403, "bad_jwt", "invalid JWT: unable to parse or verify signature");
  }

  #bearer(req: Request): string {
    const m = /^bearer\s+(\S+)$/i.exec(req.headers.get("authorization") ?? "");
    if (!m) {
      throw new AuthError(401, "no_authorization", "This endpoint requires a valid Bearer token");
    }
    return m[1];
  }

  async #requireAdmin(req: Request): Promise<void> {
    const claims = await this.#verify(this.#bearer(req));
    if (claims.role !== "service_role" && claims.role !== "supabase_admin") {
      throw new AuthError(403, "not_admin", "User not allowed");
    }
  }

  async #sessionUser(req: Request): Promise<UserRow> {
    const claims = await this.#verify(this.#bearer(req));
    if (typeof claims.sub !== "string" || !claims.sub) {
      throw new AuthError(403, "bad_jwt", "invalid claim: missing sub claim");
    }
    const [user] = await this.#auth<UserRow[]>`select * from users where id = ${claims.sub}`;
    if (!user || user.deleted_at) {
      throw new AuthError(403, "user_not_found", "User from sub claim in JWT does not exist");
    }
    return user;
  }

  /** Issues a session; runs the custom_access_token hook inside the caller's transaction. */
  async #session(
    user: UserRow,
    method: string,
    sessionId: string = crypto.randomUUID(),
  ): Promise<Json> {
    const now = Math.floor(Date.now() / 1000);
    const expiresIn = this.#opts.jwtExpiry ?? 3600;
    let claims: Json = {
      aud: user.aud ?? "authenticated",
      exp: now + expiresIn,
      iat: now,
      iss: `${this.#opts.publicUrl()}/auth/v1`,
      sub: user.id,
      email: user.email ?? "",
      phone: user.phone ?? "",
      app_metadata: user.raw_app_meta_data ?? {},
      user_metadata: user.raw_user_meta_data ?? {},
      role: user.role ?? "authenticated",
      aal: "aal1",
      amr: [{ method, timestamp: now }],
      session_id: sessionId,
      is_anonymous: user.is_anonymous,
    };
    const hookUrl = this.#hookUrls.customAccessToken;
    if (hookUrl) {
      const out = await this.#callHook(hookUrl, {
        user_id: user.id,
        claims,
        authentication_method: method,
      });
      const next = (out as { claims?: unknown }).claims;
      if (!next || typeof next !== "object") {
        throw new AuthError(
          500,
          "unexpected_failure",
          "Error running hook URI: output claims missing",
        );
      }
      const missing = REQUIRED_ACCESS_TOKEN_CLAIMS.filter((c) => !(c in (next as Json)));
      if (missing.length) {
        throw new AuthError(
          500,
          "unexpected_failure",
          `output claims do not conform to the expected schema: missing ${missing.join(", ")}`,
        );
      }
      claims = next as Json;
    }
    const accessToken = await this.#sign(claims as JWTPayload);
    const refreshToken = crypto.randomUUID().replaceAll("-", "").slice(0, 22);
    this.#refresh.set(refreshToken, { userId: user.id, sessionId });
    this.issuedTokens.add(accessToken);
    this.issuedTokens.add(refreshToken);
    return {
      access_token: accessToken,
      token_type: "bearer",
      expires_in: expiresIn,
      expires_at: now + expiresIn,
      refresh_token: refreshToken,
      user: await this.#userJson(user),
    };
  }

  // -------------------------------------------------------------------------
  // hooks (Standard Webhooks, as Auth sends them)
  // -------------------------------------------------------------------------
  async #callHook(url: string, payload: Json): Promise<Json> {
    const secret = this.#opts.hookSecret!;
    const body = JSON.stringify(payload);
    const id = `msg_${crypto.randomUUID()}`;
    const ts = Math.floor(Date.now() / 1000);
    let res: Response;
    try {
      res = await fetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "webhook-id": id,
          "webhook-timestamp": String(ts),
          "webhook-signature": signWebhook(secret, id, ts, body),
        },
        body,
        signal: AbortSignal.timeout(5000),
      });
    } catch {
      throw new AuthError(
        422,
        "hook_timeout",
        "Failed to reach hook within maximum time of 5.000000 seconds",
      );
    }
    const text = await res.text();
    if (res.status !== 200 && res.status !== 202 && res.status !== 204) {
      throw new AuthError(
        500,
        "unexpected_failure",
        `Unexpected status code returned from hook: ${res.status}`,
      );
    }
    if (res.status === 204 || text === "") return {};
    if (!(res.headers.get("content-type") ?? "").startsWith("application/json")) {
      throw new AuthError(500, "hook_payload_invalid_content_type", "Invalid JSON response.");
    }
    const out = JSON.parse(text) as Json;
    const hookError = out.error as { http_code?: number; message?: string } | undefined;
    if (hookError && hookError.message) {
      throw new AuthError(hookError.http_code ?? 500, "hook_error", hookError.message);
    }
    return out;
  }

  async #beforeUserCreated(req: Request, user: Json): Promise<void> {
    const url = this.#hookUrls.beforeUserCreated;
    if (!url) return;
    await this.#callHook(url, {
      metadata: {
        uuid: crypto.randomUUID(),
        time: new Date().toISOString(),
        name: "before-user-created",
        ip_address: req.headers.get("x-forwarded-for") ?? "127.0.0.1",
      },
      user,
    });
  }

  // -------------------------------------------------------------------------
  // users
  // -------------------------------------------------------------------------
  async #findUser(id: string): Promise<UserRow> {
    const [user] = await this.#auth<UserRow[]>`select * from users where id = ${id}`;
    if (!user) throw new AuthError(404, "user_not_found", "User not found");
    return user;
  }

  async #userJson(user: UserRow): Promise<Json> {
    const identities = await this.#auth<IdentityRow[]>`
      select * from identities where user_id = ${user.id} order by created_at`;
    return {
      id: user.id,
      aud: user.aud ?? "authenticated",
      role: user.role ?? "authenticated",
      email: user.email ?? "",
      email_confirmed_at: user.email_confirmed_at ?? undefined,
      phone: user.phone ?? "",
      phone_confirmed_at: user.phone_confirmed_at ?? undefined,
      confirmation_sent_at: user.confirmation_sent_at ?? undefined,
      confirmed_at: user.confirmed_at ?? undefined,
      last_sign_in_at: user.last_sign_in_at ?? undefined,
      app_metadata: user.raw_app_meta_data ?? {},
      user_metadata: user.raw_user_meta_data ?? {},
      identities: identities.map((i) => ({
        identity_id: i.id,
        id: i.provider_id,
        user_id: i.user_id,
        identity_data: i.identity_data,
        provider: i.provider,
        last_sign_in_at: i.last_sign_in_at,
        created_at: i.created_at,
        updated_at: i.updated_at,
        email: i.email ?? undefined,
      })),
      created_at: user.created_at,
      updated_at: user.updated_at,
      is_anonymous: user.is_anonymous,
      banned_until: user.banned_until ?? undefined,
    };
  }

  async #hash(password: string): Promise<string> {
    const [{ hash }] = await this.#pg<{ hash: string }[]>`
      select extensions.crypt(${password}, extensions.gen_salt('bf', 10)) as hash`;
    return hash;
  }

  async #passwordMatches(password: string, hash: string | null): Promise<boolean> {
    if (!hash) return false;
    const [{ ok }] = await this.#pg<{ ok: boolean }[]>`
      select extensions.crypt(${password}, ${hash}) = ${hash} as ok`;
    return ok;
  }

  #checkPassword(password: unknown): void {
    if (typeof password === "string" && password.length < 6) {
      throw new AuthError(422, "weak_password", "Password should be at least 6 characters.", {
        weak_password: { reasons: ["length"] },
      });
    }
  }

  async #createUser(req: Request, p: {
    email?: string;
    phone?: string;
    password?: string;
    userMetadata?: Json;
    appMetadata?: Json;
    emailConfirmed: boolean;
    phoneConfirmed: boolean;
    anonymous: boolean;
    duplicateCode: "email_exists" | "user_already_exists";
  }): Promise<UserRow> {
    const email = p.email?.trim().toLowerCase() || undefined;
    const phone = p.phone?.replace(/^\+/, "").trim() || undefined;
    if (email !== undefined && !EMAIL.test(email)) {
      throw new AuthError(
        400,
        "validation_failed",
        "Unable to validate email address: invalid format",
      );
    }
    if (phone !== undefined && !/^[1-9]\d{6,14}$/.test(phone)) {
      throw new AuthError(400, "validation_failed", "Invalid phone number format (E.164 required)");
    }
    this.#checkPassword(p.password);
    const duplicate = () =>
      p.duplicateCode === "email_exists"
        ? new AuthError(
          422,
          "email_exists",
          "A user with this email address has already been registered",
        )
        : new AuthError(422, "user_already_exists", "User already registered");
    if (email) {
      const [dup] = await this
        .#auth`select 1 from users where lower(email) = ${email} and is_sso_user = false`;
      if (dup) throw duplicate();
    }
    if (phone) {
      const [dup] = await this.#auth`select 1 from users where phone = ${phone}`;
      if (dup) {
        throw new AuthError(
          422,
          "phone_exists",
          "A user with this phone number has already been registered",
        );
      }
    }
    const provider = p.anonymous ? "anonymous" : email ? "email" : "phone";
    const id = crypto.randomUUID();
    const now = new Date();
    const appMeta: Json = p.anonymous ? {} : { provider, providers: [provider] };
    const userMeta: Json = p.userMetadata ?? {};

    await this.#beforeUserCreated(req, {
      id,
      aud: "authenticated",
      role: "authenticated",
      email: email ?? "",
      phone: phone ?? "",
      app_metadata: appMeta,
      user_metadata: userMeta,
      identities: [],
      created_at: now.toISOString(),
      updated_at: now.toISOString(),
      is_anonymous: p.anonymous,
    });

    const hash = p.password ? await this.#hash(p.password) : null;
    try {
      await this.#auth.begin(async (tx) => {
        await tx`
          insert into users (
            instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
            phone, phone_confirmed_at, raw_app_meta_data, raw_user_meta_data,
            created_at, updated_at, is_sso_user, is_anonymous,
            confirmation_token, recovery_token, email_change_token_new, email_change
          ) values (
            ${INSTANCE_ID}, ${id}, 'authenticated', 'authenticated', ${email ?? null}, ${hash},
            ${email && p.emailConfirmed ? now : null},
            ${phone ?? null}, ${phone && p.phoneConfirmed ? now : null},
            ${tx.json(appMeta as postgres.JSONValue)}, ${tx.json(userMeta as postgres.JSONValue)},
            ${now}, ${now}, false, ${p.anonymous}, '', '', '', ''
          )`;
        if (!p.anonymous) {
          const identityData: Json = email
            ? { sub: id, email, email_verified: p.emailConfirmed, phone_verified: false }
            : { sub: id, phone, email_verified: false, phone_verified: p.phoneConfirmed };
          await tx`
            insert into identities (provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at)
            values (${id}, ${id}, ${
            tx.json(identityData as postgres.JSONValue)
          }, ${provider}, ${now}, ${now}, ${now})`;
        }
        // Like GoTrue, app_metadata given by an admin is merged in a second write.
        if (p.appMetadata && Object.keys(p.appMetadata).length > 0) {
          await tx`
            update users set raw_app_meta_data = raw_app_meta_data || ${
            tx.json(p.appMetadata as postgres.JSONValue)
          },
              updated_at = now()
            where id = ${id}`;
        }
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw duplicate();
      throw err;
    }
    return await this.#findUser(id);
  }

  async #json(req: Request): Promise<Json> {
    const text = await req.text();
    if (!text) return {};
    try {
      const v = JSON.parse(text);
      if (v && typeof v === "object" && !Array.isArray(v)) return v as Json;
    } catch {
      // fall through
    }
    throw new AuthError(400, "bad_json", "Could not parse request body as JSON");
  }

  async #signup(req: Request): Promise<Response> {
    const body = await this.#json(req);
    const email = typeof body.email === "string" ? body.email : undefined;
    const phone = typeof body.phone === "string" ? body.phone : undefined;
    const password = typeof body.password === "string" ? body.password : undefined;
    const data = body.data && typeof body.data === "object" ? body.data as Json : {};
    const anonymous = !email && !phone;
    if (!anonymous && !password) {
      throw new AuthError(422, "validation_failed", "Signup requires a valid password");
    }
    // Local default: confirmations off (autoconfirm), so sign-up returns a session.
    const user = await this.#createUser(req, {
      email,
      phone,
      password,
      userMetadata: data,
      emailConfirmed: true,
      phoneConfirmed: true,
      anonymous,
      duplicateCode: "user_already_exists",
    });
    return respond(200, await this.#signIn(user, anonymous ? "anonymous" : "password"));
  }

  /** Records the sign-in and issues a session, in one transaction (as Auth does). */
  async #signIn(user: UserRow, method: string): Promise<Json> {
    return await this.#auth.begin(async (tx) => {
      const [fresh] = await tx<UserRow[]>`
        update users set last_sign_in_at = now(), updated_at = now() where id = ${user.id} returning *`;
      await tx`update identities set last_sign_in_at = now(), updated_at = now() where user_id = ${user.id}`;
      return await this.#session(fresh, method);
    }) as Json;
  }

  async #token(req: Request, grantType: string | null): Promise<Response> {
    const body = await this.#json(req);
    if (grantType === "password") {
      const email = typeof body.email === "string" ? body.email.trim().toLowerCase() : undefined;
      const phone = typeof body.phone === "string" ? body.phone.replace(/^\+/, "") : undefined;
      const password = typeof body.password === "string" ? body.password : "";
      const [user] = email
        ? await this.#auth<
          UserRow[]
        >`select * from users where lower(email) = ${email} and is_sso_user = false and deleted_at is null`
        : phone
        ? await this.#auth<
          UserRow[]
        >`select * from users where phone = ${phone} and deleted_at is null`
        : [];
      if (!user || !(await this.#passwordMatches(password, user.encrypted_password))) {
        throw new AuthError(400, "invalid_credentials", "Invalid login credentials");
      }
      if (user.banned_until && user.banned_until.getTime() > Date.now()) {
        throw new AuthError(400, "user_banned", "User is banned");
      }
      if (email && !user.email_confirmed_at) {
        throw new AuthError(400, "email_not_confirmed", "Email not confirmed");
      }
      return respond(200, await this.#signIn(user, "password"));
    }
    if (grantType === "refresh_token") {
      const token = typeof body.refresh_token === "string" ? body.refresh_token : "";
      const session = this.#refresh.get(token);
      if (!session) {
        throw new AuthError(
          400,
          "refresh_token_not_found",
          "Invalid Refresh Token: Refresh Token Not Found",
        );
      }
      this.#refresh.delete(token);
      const user = await this.#findUser(session.userId);
      return respond(
        200,
        await this.#auth.begin(async () =>
          await this.#session(user, "token_refresh", session.sessionId)
        ),
      );
    }
    throw new AuthError(400, "validation_failed", "unsupported_grant_type");
  }

  async #updateSelf(req: Request): Promise<Response> {
    const user = await this.#sessionUser(req);
    const body = await this.#json(req);
    this.#checkPassword(body.password);
    const hash = typeof body.password === "string" ? await this.#hash(body.password) : undefined;
    await this.#auth.begin(async (tx) => {
      if (body.data && typeof body.data === "object") {
        const merged = mergeMetadata(user.raw_user_meta_data, body.data as Json);
        await tx`update users set raw_user_meta_data = ${
          tx.json(merged as postgres.JSONValue)
        }, updated_at = now() where id = ${user.id}`;
      }
      if (typeof body.email === "string" && body.email.toLowerCase() !== user.email) {
        await this.#changeEmail(tx, user.id, body.email);
      }
      if (typeof body.phone === "string") {
        await tx`update users set phone = ${
          body.phone.replace(/^\+/, "")
        }, updated_at = now() where id = ${user.id}`;
      }
      if (hash) {
        await tx`update users set encrypted_password = ${hash}, updated_at = now() where id = ${user.id}`;
      }
    }).catch((err) => {
      if (isUniqueViolation(err)) {
        throw new AuthError(
          422,
          "email_exists",
          "A user with this email address has already been registered",
        );
      }
      throw err;
    });
    return respond(200, await this.#userJson(await this.#findUser(user.id)));
  }

  // Local default: email changes apply at once (no confirmation mail here).
  async #changeEmail(
    tx: postgres.TransactionSql<Record<string, never>>,
    id: string,
    raw: string,
  ): Promise<void> {
    const email = raw.trim().toLowerCase();
    if (!EMAIL.test(email)) {
      throw new AuthError(
        400,
        "validation_failed",
        "Unable to validate email address: invalid format",
      );
    }
    const [dup] =
      await tx`select 1 from users where lower(email) = ${email} and id <> ${id} and is_sso_user = false`;
    if (dup) {
      throw new AuthError(
        422,
        "email_exists",
        "A user with this email address has already been registered",
      );
    }
    await tx`update users set email = ${email}, email_confirmed_at = coalesce(email_confirmed_at, now()), updated_at = now() where id = ${id}`;
    await tx`
      update identities set identity_data = identity_data || ${
      tx.json({ email } as postgres.JSONValue)
    }, updated_at = now()
      where user_id = ${id} and provider = 'email'`;
  }

  async #adminCreate(req: Request): Promise<Response> {
    const body = await this.#json(req);
    const email = typeof body.email === "string" ? body.email : undefined;
    const phone = typeof body.phone === "string" ? body.phone : undefined;
    if (!email && !phone) {
      throw new AuthError(
        400,
        "validation_failed",
        "Unable to validate email address: invalid format",
      );
    }
    const user = await this.#createUser(req, {
      email,
      phone,
      password: typeof body.password === "string" ? body.password : undefined,
      userMetadata: body.user_metadata && typeof body.user_metadata === "object"
        ? body.user_metadata as Json
        : {},
      appMetadata: body.app_metadata && typeof body.app_metadata === "object"
        ? body.app_metadata as Json
        : undefined,
      emailConfirmed: body.email_confirm === true,
      phoneConfirmed: body.phone_confirm === true,
      anonymous: false,
      duplicateCode: "email_exists",
    });
    return respond(200, await this.#userJson(user));
  }

  async #adminUpdate(req: Request, id: string): Promise<Response> {
    const user = await this.#findUser(id);
    const body = await this.#json(req);
    this.#checkPassword(body.password);
    const hash = typeof body.password === "string" ? await this.#hash(body.password) : undefined;
    await this.#auth.begin(async (tx) => {
      if (typeof body.email === "string" && body.email.toLowerCase() !== user.email) {
        await this.#changeEmail(tx, id, body.email);
      }
      if (typeof body.phone === "string") {
        await tx`update users set phone = ${
          body.phone.replace(/^\+/, "") || null
        }, updated_at = now() where id = ${id}`;
      }
      if (hash) {
        await tx`update users set encrypted_password = ${hash}, updated_at = now() where id = ${id}`;
      }
      if (body.email_confirm === true) {
        await tx`update users set email_confirmed_at = coalesce(email_confirmed_at, now()), updated_at = now() where id = ${id}`;
      }
      if (body.phone_confirm === true) {
        await tx`update users set phone_confirmed_at = coalesce(phone_confirmed_at, now()), updated_at = now() where id = ${id}`;
      }
      if (body.user_metadata && typeof body.user_metadata === "object") {
        const merged = mergeMetadata(user.raw_user_meta_data, body.user_metadata as Json);
        await tx`update users set raw_user_meta_data = ${
          tx.json(merged as postgres.JSONValue)
        }, updated_at = now() where id = ${id}`;
      }
      if (body.app_metadata && typeof body.app_metadata === "object") {
        const merged = mergeMetadata(user.raw_app_meta_data, body.app_metadata as Json);
        await tx`update users set raw_app_meta_data = ${
          tx.json(merged as postgres.JSONValue)
        }, updated_at = now() where id = ${id}`;
      }
      if (typeof body.ban_duration === "string") {
        if (body.ban_duration === "none") {
          await tx`update users set banned_until = null, updated_at = now() where id = ${id}`;
        } else {
          const ms = parseDuration(body.ban_duration);
          if (ms === null) {
            throw new AuthError(400, "validation_failed", "invalid format for ban duration");
          }
          await tx`update users set banned_until = now() + make_interval(secs => ${
            ms / 1000
          }), updated_at = now() where id = ${id}`;
        }
      }
    }).catch((err) => {
      if (isUniqueViolation(err)) {
        throw new AuthError(
          422,
          "email_exists",
          "A user with this email address has already been registered",
        );
      }
      throw err;
    });
    return respond(200, await this.#userJson(await this.#findUser(id)));
  }

  async #adminDelete(req: Request, id: string): Promise<Response> {
    const user = await this.#findUser(id);
    const body = await this.#json(req);
    if (body.should_soft_delete === true) {
      // GoTrue's soft delete: obfuscated email/phone, metadata cleared, deleted_at set.
      await this.#auth.begin(async (tx) => {
        await tx`
          update users set
            email = case when email is null then null else md5(id::text || email) || '@deleted.invalid' end,
            phone = null, encrypted_password = '', raw_user_meta_data = '{}', raw_app_meta_data = '{}',
            deleted_at = now(), updated_at = now()
          where id = ${id}`;
        await tx`update identities set identity_data = '{}', updated_at = now() where user_id = ${id}`;
      });
    } else {
      await this.#auth`delete from users where id = ${user.id}`;
    }
    return respond(200, {});
  }
}
