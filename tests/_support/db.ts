// Shared test plumbing: the local database as each platform role reaches it, a
// transaction that always rolls back, and the auth-user fixture (a row inserted the
// way Supabase Auth inserts it). The database is the one scripts/test.sh (or
// scripts/db.sh start) runs: USER_SYNC_DB_URL, else 127.0.0.1:$USER_SYNC_DB_PORT (54322).
import postgres from "postgres";
import { localDbUrl, withCredentials } from "../../platform/local.ts";

export type Sql = postgres.Sql<Record<string, never>>;

/**
 * The roles tests connect as: `postgres` (what SUPABASE_DB_URL is for edge functions,
 * not a superuser), `supabase_admin` (superuser, like pgTAP: may switch into
 * supabase_auth_admin and the API roles), `authenticator` (the Data API's login role),
 * `supabase_auth_admin` (Supabase Auth's own connection).
 */
export type DbRole = "postgres" | "supabase_admin" | "authenticator" | "supabase_auth_admin";

/**
 * The local database URL as `role` (every local role's password is `postgres`); with
 * `port`, the cluster on that port instead (a test's own cluster).
 */
export function dbUrl(role: DbRole = "postgres", port?: number): string {
  if (port !== undefined) {
    return withCredentials(`postgresql://postgres@127.0.0.1:${port}/postgres`, role, "postgres");
  }
  return role === "postgres" ? localDbUrl() : withCredentials(localDbUrl(), role, "postgres");
}

/** A pool on the local database as `role`: no prepared statements (as the pooler), notices dropped. */
export function connect(
  role: DbRole = "supabase_admin",
  opts: { max?: number; app?: string; url?: string; port?: number } = {},
): Sql {
  return postgres(opts.url ?? dbUrl(role, opts.port), {
    max: opts.max ?? 4,
    prepare: false,
    onnotice: () => {},
    ...(opts.app ? { connection: { application_name: opts.app } } : {}),
  }) as unknown as Sql;
}

/** Thrown to roll a transaction back on purpose once its assertions ran. */
export class Rollback extends Error {}

/** Runs fn in a transaction that is always rolled back. */
export async function inRolledBackTx<T>(
  sql: postgres.Sql,
  fn: (tx: postgres.TransactionSql) => Promise<T>,
): Promise<T> {
  let result: T | undefined;
  try {
    await sql.begin(async (tx) => {
      result = await fn(tx);
      throw new Rollback();
    });
  } catch (e) {
    if (!(e instanceof Rollback)) throw e;
  }
  return result as T;
}

/** An auth user as a test describes it; insertAuthUser writes it as Supabase Auth does. */
export interface AuthUserFixture {
  id: string;
  email?: string | null;
  phone?: string | null;
  appMeta?: unknown;
  userMeta?: unknown;
  isAnonymous?: boolean;
}

/**
 * Inserts one auth user the way Supabase Auth does: as supabase_auth_admin, search_path
 * auth (so the trigger runs as on the platform). Needs a superuser transaction; leaves
 * its role and search_path as `set local` would after the insert.
 */
export async function insertAuthUser(
  tx: postgres.TransactionSql | postgres.Sql,
  u: AuthUserFixture,
): Promise<void> {
  await tx`set local role supabase_auth_admin`;
  await tx`set local search_path = auth`;
  await tx`
    insert into users (instance_id, id, aud, role, email, phone, raw_app_meta_data, raw_user_meta_data,
                       created_at, updated_at, is_anonymous)
    values ('00000000-0000-0000-0000-000000000000', ${u.id}, 'authenticated', 'authenticated',
            ${u.email ?? null}, ${u.phone ?? null},
            ${u.appMeta === undefined ? null : tx.json(u.appMeta as postgres.JSONValue)},
            ${u.userMeta === undefined ? null : tx.json(u.userMeta as postgres.JSONValue)},
            now(), now(), ${u.isAnonymous ?? false})`;
  await tx`reset role`;
  await tx`set local search_path = public, extensions`;
}

/**
 * Runs fn in a transaction as a signed-in user of the Data API: role authenticated and
 * the JWT claims PostgREST sets, so RLS applies. Needs a superuser connection.
 */
export async function asUser<T>(sql: Sql, userId: string, fn: (tx: Sql) => Promise<T>): Promise<T> {
  return await sql.begin(async (tx) => {
    await tx`set local role authenticated`;
    await tx`select set_config('request.jwt.claims', ${JSON.stringify({ sub: userId, role: "authenticated", aud: "authenticated" })}, true)`;
    return await fn(tx as unknown as Sql);
  }) as T;
}

/** Runs fn in a transaction as Supabase Auth: role supabase_auth_admin, search_path auth. */
export async function asAuth(sql: Sql, fn: (tx: Sql) => Promise<unknown>): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`set local role supabase_auth_admin`;
    await tx`set local search_path = auth`;
    await fn(tx as unknown as Sql);
  });
}

/**
 * Runs fn with an app's trigger on public.users (BEFORE INSERT, for each row or
 * statement) whose plpgsql body is `body`; the trigger and its function are dropped
 * afterwards, whatever happens. For tests that make a profile write slow or racy.
 */
export async function withProfileTrigger<T>(
  sql: postgres.Sql | Sql,
  trigger: { name: string; level: "row" | "statement"; body: string },
  fn: () => Promise<T>,
): Promise<T> {
  const fnName = `public.${trigger.name}`;
  await sql.unsafe(`
    create or replace function ${fnName}() returns trigger language plpgsql as $body$
    begin
      ${trigger.body}
    end $body$;
    create trigger ${trigger.name} before insert on public.users
      for each ${trigger.level} execute function ${fnName}();`);
  try {
    return await fn();
  } finally {
    await sql.unsafe(`drop trigger if exists ${trigger.name} on public.users; drop function if exists ${fnName}();`);
  }
}
