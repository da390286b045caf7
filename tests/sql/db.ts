// Test helpers for suites that talk to the local database directly (no HTTP).
// The database is the one scripts/test.sh (or scripts/db.sh start) runs; its port
// comes from USER_SYNC_DB_PORT (default 54322, SPEC §5).
import postgres from "postgres";

export const DB_PORT = Number(Deno.env.get("USER_SYNC_DB_PORT") ?? "54322");
/** Superuser, like pgTAP: may switch into supabase_auth_admin and the API roles. */
export const ADMIN_DB_URL = `postgresql://supabase_admin:postgres@127.0.0.1:${DB_PORT}/postgres`;
/** What SUPABASE_DB_URL is for edge functions: postgres, not a superuser. */
export const POSTGRES_DB_URL = `postgresql://postgres:postgres@127.0.0.1:${DB_PORT}/postgres`;

export function connect(url = ADMIN_DB_URL, max = 4) {
  return postgres(url, { max, prepare: false, onnotice: () => {} });
}

/** Thrown to roll a transaction back on purpose once its assertions ran. */
export class Rollback extends Error {}

/** Runs fn in a transaction that is always rolled back. */
export async function inRolledBackTx<T>(sql: postgres.Sql, fn: (tx: postgres.TransactionSql) => Promise<T>): Promise<T> {
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

/** Inserts one auth user the way Supabase Auth does: as supabase_auth_admin, search_path auth. */
export async function insertAuthUser(
  tx: postgres.TransactionSql | postgres.Sql,
  u: {
    id: string;
    email?: string | null;
    phone?: string | null;
    appMeta?: unknown;
    userMeta?: unknown;
    isAnonymous?: boolean;
  },
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
