// Who is calling? One answer for every function:
//   service  the project's secret key (SUPABASE_SECRET_KEYS / SUPABASE_SERVICE_ROLE_KEY)
//            in the `apikey` header or as `Authorization: Bearer`, compared in constant
//            time; or a legacy service_role JWT verified with the project's JWT secret
//   user     a user JWT verified for real: HS256 with the JWT secret (or, without it,
//            by Supabase Auth's GET /auth/v1/user), asymmetric keys through the JWKS;
//            it must carry `exp` and `aud` authenticated; then the role is read from
//            Auth's truth, user_sync.auth_role() over auth.users (never the mirror):
//            a demoted, soft-deleted or banned admin is no admin from that moment
//   anon     only a public key (anon / publishable)
//   none     no credentials at all
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  decodeJwt,
  decodeProtectedHeader,
  type JWTPayload,
  jwtVerify,
  type JWTVerifyGetKey,
} from "jose";
import { createHash, timingSafeEqual } from "node:crypto";
import type { Config } from "./config.ts";
import type { Sql } from "./db.ts";
import { HttpError } from "./http.ts";
import { UUID_PATTERN } from "./validation.ts";

export type Caller =
  | { kind: "service" }
  | { kind: "user"; userId: string; isAdmin: boolean; role: string | null }
  | { kind: "anon" }
  | { kind: "none" };

/** Supabase Auth (or its JWKS endpoint) could not be reached. Answered as 503. */
export class AuthUnavailableError extends Error {
  constructor(message = "Supabase Auth is unreachable.") {
    super(message);
    this.name = "AuthUnavailableError";
  }
}

export interface AuthDeps {
  config: Config;
  sql: () => Sql;
  fetch: typeof fetch;
  jwks: () => JWTVerifyGetKey;
}

const ASYMMETRIC_ALGS = ["ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "EdDSA"];
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

function digest(value: string): Uint8Array {
  return createHash("sha256").update(value, "utf8").digest();
}

/** Constant-time membership: equal-length digests, every key compared. */
export function matchesAnyKey(candidate: string, keys: readonly string[]): boolean {
  const c = digest(candidate);
  let found = false;
  for (const key of keys) {
    if (timingSafeEqual(c, digest(key))) found = true;
  }
  return found;
}

export function bearerToken(req: Request): string | null {
  const header = req.headers.get("authorization");
  if (!header) return null;
  const m = /^bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1] : null;
}

/** A JWKS getter: SUPABASE_JWKS if given, else Auth's well-known endpoint (cached). */
export function createJwksGetter(config: Config, fetchImpl: typeof fetch): JWTVerifyGetKey {
  if (config.jwks) return createLocalJWKSet(config.jwks as Parameters<typeof createLocalJWKSet>[0]);
  const url = new URL(`${config.supabaseUrl}/auth/v1/.well-known/jwks.json`);
  const guardedFetch = async (input: string | URL | Request, init?: RequestInit) => {
    let res: Response;
    try {
      res = await fetchImpl(input, init);
    } catch {
      throw new AuthUnavailableError("Could not fetch the JSON Web Key Set from Supabase Auth.");
    }
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new AuthUnavailableError(
        `Supabase Auth answered ${res.status} for its JSON Web Key Set.`,
      );
    }
    return res;
  };
  return createRemoteJWKSet(url, {
    timeoutDuration: 3000,
    cooldownDuration: 30_000,
    cacheMaxAge: 10 * 60_000,
    [customFetch]: guardedFetch,
  });
}

function invalidToken(): HttpError {
  return new HttpError(401, "invalid_token", "The access token is invalid or has expired.");
}

/** Verifies a JWT; answers its claims, or throws 401 (bad token) / 503 (Auth unreachable). */
async function verifyJwt(token: string, deps: AuthDeps): Promise<JWTPayload> {
  let alg: string | undefined;
  try {
    alg = decodeProtectedHeader(token).alg;
  } catch {
    throw invalidToken();
  }
  try {
    if (alg === "HS256") {
      if (deps.config.jwtSecret) {
        const key = new TextEncoder().encode(deps.config.jwtSecret);
        return (await jwtVerify(token, key, { algorithms: ["HS256"] })).payload;
      }
      return await verifyWithAuth(token, deps);
    }
    if (alg && ASYMMETRIC_ALGS.includes(alg)) {
      return (await jwtVerify(token, deps.jwks(), { algorithms: ASYMMETRIC_ALGS })).payload;
    }
  } catch (err) {
    if (err instanceof AuthUnavailableError || err instanceof HttpError) throw err;
    throw invalidToken();
  }
  throw invalidToken();
}

/** Without the legacy JWT secret, Supabase Auth itself vouches for an HS256 token. */
async function verifyWithAuth(token: string, deps: AuthDeps): Promise<JWTPayload> {
  const apikey = deps.config.publicKeys[0] ?? deps.config.authAdminKey;
  let res: Response;
  try {
    res = await deps.fetch(`${deps.config.supabaseUrl}/auth/v1/user`, {
      headers: { authorization: `Bearer ${token}`, apikey },
      signal: AbortSignal.timeout(5000),
    });
  } catch {
    throw new AuthUnavailableError();
  }
  if (res.status === 401 || res.status === 403 || res.status === 404) {
    await res.body?.cancel();
    throw invalidToken();
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new AuthUnavailableError(`Supabase Auth answered ${res.status}.`);
  }
  const user = await res.json().catch(() => null) as { id?: unknown; role?: unknown } | null;
  if (!user || typeof user.id !== "string") throw invalidToken();
  // Auth checked the signature; the claims themselves are held to the same rules.
  let claims: JWTPayload;
  try {
    claims = decodeJwt(token);
  } catch {
    throw invalidToken();
  }
  return {
    ...claims,
    sub: user.id,
    role: typeof user.role === "string" ? user.role : "authenticated",
  };
}

/** A user access token expires and is meant for this project's users (aud). */
function isUserToken(claims: JWTPayload): boolean {
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  return typeof claims.exp === "number" && aud.includes("authenticated");
}

/** Classifies the caller of a request (see the header of this file). */
export async function identifyCaller(req: Request, deps: AuthDeps): Promise<Caller> {
  const { config } = deps;
  const apikey = req.headers.get("apikey")?.trim() || null;
  const bearer = bearerToken(req);

  if (
    (apikey && matchesAnyKey(apikey, config.secretKeys)) ||
    (bearer && matchesAnyKey(bearer, config.secretKeys))
  ) {
    return { kind: "service" };
  }
  if (bearer && !matchesAnyKey(bearer, config.publicKeys)) {
    if (!JWT_SHAPE.test(bearer)) {
      throw new HttpError(
        401,
        "invalid_credentials",
        "The Authorization header carries an unknown key.",
      );
    }
    const claims = await verifyJwt(bearer, deps);
    if (claims.role === "service_role") return { kind: "service" };
    if (claims.role === "anon") return { kind: "anon" };
    if (
      claims.role !== "authenticated" || typeof claims.sub !== "string" ||
      !UUID_PATTERN.test(claims.sub) || !isUserToken(claims)
    ) {
      throw invalidToken();
    }
    // Auth's truth at the moment of the decision (null: gone, soft-deleted or banned).
    const [row] = await deps.sql()<{ role: string | null }[]>`
      select user_sync.auth_role(${claims.sub}::uuid) as role`;
    const role = row?.role ?? null;
    return { kind: "user", userId: claims.sub, role, isAdmin: role === "admin" };
  }
  if (apikey && !bearer && !matchesAnyKey(apikey, config.publicKeys)) {
    throw new HttpError(401, "invalid_credentials", "The apikey header carries an unknown key.");
  }
  return apikey || bearer ? { kind: "anon" } : { kind: "none" };
}

/** 401 without credentials, 403 for a user who is not an admin. */
export function requireServiceOrAdmin(caller: Caller): void {
  if (caller.kind === "service") return;
  if (caller.kind === "user") {
    if (caller.isAdmin) return;
    throw new HttpError(
      403,
      "forbidden",
      "Only admins and the service key may call this function.",
    );
  }
  throw new HttpError(
    401,
    "unauthorized",
    "Send the secret key, or the access token of an admin user, as Authorization: Bearer.",
  );
}

/** Server-to-server only (the secret key). */
export function requireService(caller: Caller): void {
  if (caller.kind === "service") return;
  if (caller.kind === "user") {
    throw new HttpError(403, "forbidden", "Only the service key may call this endpoint.");
  }
  throw new HttpError(
    401,
    "unauthorized",
    "Send the secret key (apikey header or Authorization: Bearer).",
  );
}
