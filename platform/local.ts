// LOCAL PLATFORM (development and tests only; never deployed): a stand-in for the hosted platform.
// The fixed, public, development-only values of SPEC §5, and the local API keys
// derived from them (HS256 JWTs signed with the local JWT secret, like the CLI's).
import { SignJWT } from "jose";

export const LOCAL_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long";
export const LOCAL_HOOK_SECRET = "v1,whsec_dXNlci1zeW5jLWxvY2FsLWhvb2stc2VjcmV0LTAwMDE=";
export const LOCAL_API_PORT = 54321;
export const LOCAL_DB_PORT = 54322;
/** Expiry of the Supabase CLI's local demo keys (2032-11-12). */
const DEMO_KEY_EXP = 1983812996;

/** The database URL: USER_SYNC_DB_URL, else postgres@127.0.0.1:$USER_SYNC_DB_PORT. */
export function localDbUrl(): string {
  const explicit = Deno.env.get("USER_SYNC_DB_URL");
  if (explicit) return explicit;
  const port = Deno.env.get("USER_SYNC_DB_PORT") || String(LOCAL_DB_PORT);
  return `postgresql://postgres:postgres@127.0.0.1:${port}/postgres`;
}

/** The API port: USER_SYNC_API_PORT, else 54321. */
export function localApiPort(): number {
  return Number(Deno.env.get("USER_SYNC_API_PORT") || LOCAL_API_PORT);
}

/** An API key as the CLI makes them: {"iss":"supabase-demo","role":...,"exp":...}. */
export async function apiKey(
  role: "anon" | "service_role",
  jwtSecret = LOCAL_JWT_SECRET,
): Promise<string> {
  return await new SignJWT({ iss: "supabase-demo", role, exp: DEMO_KEY_EXP })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .sign(new TextEncoder().encode(jwtSecret));
}

/** The same URL with other credentials. */
export function withCredentials(dbUrl: string, user: string, password: string): string {
  const u = new URL(dbUrl);
  u.username = user;
  u.password = password;
  return u.toString();
}
