// user_sync.status() after a finished reconcile pass, with committed data (each write and
// each status() its own transaction, as the dashboard and a monitor see them). It counts
// the missing and orphaned profiles exactly whichever way they came about:
//   - the ids where differences come from (rows written since the pass, the deletion log,
//     open errors): a sign-up whose profile was never written, a profile deleted, an
//     orphan inserted behind the foreign key's back;
//   - and the ids nothing points to: an auth user deleted behind the foreign key's back
//     (its profile stays, an orphan older than the pass) together with a profile deleted
//     with its log entry. The two offset each other in number, and no log names them: only
//     the fingerprint of both id sets tells that they differ, and then the ids are joined.
// Every answer is checked against a join of both tables made by the test itself.
import assert from "node:assert/strict";
import postgres from "postgres";
import { dbUrl } from "../_support/db.ts";

const prefix = "5a7c0001";
const uid = (i: number) => `${prefix}-0000-4000-8000-${String(i).padStart(12, "0")}`;

/** What status() must answer: both tables joined by the test. */
async function truth(db: postgres.Sql) {
  const [t] = await db`
    select count(a.id)::int as auth_users, count(p.id)::int as profiles,
           (count(*) filter (where p.id is null))::int as missing,
           (count(*) filter (where a.id is null))::int as orphaned
    from auth.users a full join public.users p on p.id = a.id`;
  return { ...t };
}

async function status(db: postgres.Sql) {
  const [{ s }] = await db`select user_sync.status() as s`;
  return { auth_users: s.auth_users, profiles: s.profiles, missing: s.missing, orphaned: s.orphaned };
}

Deno.test("status() counts missing and orphaned profiles exactly, however they came about", async () => {
  const db = postgres(dbUrl("supabase_admin"), { max: 1, prepare: false, onnotice: () => {} });
  try {
    await db.unsafe(`
      insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
      select '00000000-0000-0000-0000-000000000000', ('${prefix}-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid,
             'authenticated', 'authenticated', 'count' || g || '.${prefix}@example.com',
             '{"provider": "email", "providers": ["email"]}', jsonb_build_object('full_name', 'Count ' || g), now(), now()
      from generate_series(1, 200) g`);
    await db`select user_sync.reconcile()`;
    await db`select user_sync.reconcile()`; // a finished pass: status() counts from its horizon
    assert.deepEqual(await status(db), await truth(db), "in sync");
    assert.equal((await status(db)).missing, 0);

    // Where the differences come from: a sign-up whose profile was never written (trigger
    // bypassed), a profile deleted (logged), an orphan inserted behind the foreign key.
    await db.unsafe(`
      set session_replication_role = replica;
      insert into auth.users (instance_id, id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
      values ('00000000-0000-0000-0000-000000000000', '${uid(201)}', 'authenticated', 'authenticated',
              'late.${prefix}@example.com', '{"provider": "email", "providers": ["email"]}', '{}', now(), now());
      insert into public.users (id, email) values ('${prefix}-0000-4000-8000-0000000009ff', 'orphan.${prefix}@example.com');
      reset session_replication_role;
      delete from public.users where id = '${uid(1)}';`);
    const traced = await status(db);
    assert.deepEqual(traced, await truth(db));
    assert.deepEqual({ missing: traced.missing, orphaned: traced.orphaned }, { missing: 2, orphaned: 1 });

    await db`select user_sync.reconcile()`;
    await db`select user_sync.reconcile()`;
    assert.deepEqual(await status(db), await truth(db), "healed");
    assert.equal((await status(db)).orphaned, 0);

    // Nothing points to them: an auth user deleted behind the foreign key's back (its
    // profile, older than the pass, stays) and a profile deleted with its log entry. As
    // many profiles as auth users.
    await db.unsafe(`
      set session_replication_role = replica;
      delete from auth.users where id = '${uid(2)}';
      reset session_replication_role;
      delete from public.users where id = '${uid(3)}';
      delete from user_sync.deleted_profiles where user_id = '${uid(3)}';`);
    const untraced = await status(db);
    assert.equal(untraced.auth_users, untraced.profiles, "as many profiles as auth users");
    assert.deepEqual(untraced, await truth(db));
    assert.deepEqual({ missing: untraced.missing, orphaned: untraced.orphaned }, { missing: 1, orphaned: 1 });
  } finally {
    await db.unsafe(`delete from public.users where id::text like '${prefix}%'`);
    await db.unsafe(`delete from auth.users where id::text like '${prefix}%'`);
    await db`delete from user_sync.deleted_profiles where user_id::text like ${prefix + "%"}`;
    await db.end();
  }
});
