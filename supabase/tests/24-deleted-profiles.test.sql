-- Profiles deleted while their auth user stays are logged for the next incremental
-- reconcile pass (user_sync.deleted_profiles), whoever deletes them and under any
-- replication role; Auth's hard delete logs nothing and never fails because of the log.
begin;
select plan(8);

insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
select ('e4000000-0000-4000-8000-00000000000' || g)::uuid, 'authenticated', 'authenticated', 'log' || g || '@example.com',
       '{"provider": "email", "providers": ["email"]}', '{}', now(), now()
from generate_series(1, 6) g;
delete from user_sync.deleted_profiles;

delete from public.users where id = 'e4000000-0000-4000-8000-000000000001';
select results_eq(
  $$select user_id from user_sync.deleted_profiles$$,
  $$values ('e4000000-0000-4000-8000-000000000001'::uuid)$$,
  'a profile deleted by hand is logged');

set local session_replication_role = replica;
delete from public.users where id = 'e4000000-0000-4000-8000-000000000002';
set local session_replication_role = origin;
select is((select count(*)::int from user_sync.deleted_profiles where user_id = 'e4000000-0000-4000-8000-000000000002'), 1,
  'and one deleted under session_replication_role = replica (a restore)');

set local role supabase_auth_admin;
delete from auth.users where id = 'e4000000-0000-4000-8000-000000000003';
reset role;
select is((select count(*)::int from user_sync.deleted_profiles), 2,
  'Auth''s hard delete removes the profile by the cascade and logs nothing');

-- What an incremental pass inserts again: the logged deletions whose auth user stays
-- (supabase/tests/25-lookups-by-key.test.sql: by primary key under reconcile's settings).
delete from public.users where id = 'e4000000-0000-4000-8000-000000000005';
select is((select missing from user_sync.reconcile_plan_deleted(null, (pg_current_xact_id()::text::bigint + 1)::text::xid8, 100)),
  array['e4000000-0000-4000-8000-000000000001', 'e4000000-0000-4000-8000-000000000002',
        'e4000000-0000-4000-8000-000000000005']::uuid[],
  'the logged deletions whose auth user stays are found');

-- The log gone (dropped by mistake): Auth's hard delete still goes through.
drop table user_sync.deleted_profiles;
set local role supabase_auth_admin;
delete from auth.users where id = 'e4000000-0000-4000-8000-000000000004'; -- an error here fails the file
reset role;
select is((select count(*)::int from auth.users where id = 'e4000000-0000-4000-8000-000000000004'), 0,
  'with the log broken, Auth''s hard delete goes through');
select is((select count(*)::int from public.users where id = 'e4000000-0000-4000-8000-000000000004'), 0,
  'and its profile is gone');
select lives_ok($$delete from public.users where id = 'e4000000-0000-4000-8000-000000000006'$$,
  'and so does an app''s delete of a profile');
select is((select count(*)::int from public.users where id = 'e4000000-0000-4000-8000-000000000006'), 0,
  'which is deleted');

select * from finish();
rollback;
