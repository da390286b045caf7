-- reconcile() and status(): missing, drifted and orphaned profiles are found and
-- fixed; a dry run changes nothing but reports; a second run writes nothing; an
-- overlapping run is skipped; status() counts right; bad arguments are refused.
begin;
select plan(26);

-- Start from a table in sync (other tests' fixtures are rolled back; the cluster may
-- hold rows from elsewhere, so every count below is relative to this baseline).
select user_sync.reconcile(false, 'test');
create temp table base as select (user_sync.status() ->> 'auth_users')::int as auth_users;

insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
select ('e0000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'authenticated', 'authenticated',
       'recon' || i || '@example.com', '{"provider": "email", "providers": ["email"]}',
       jsonb_build_object('full_name', 'Recon ' || i), now(), now()
from generate_series(1, 10) i;

-- Missing: auth users created while the trigger could not run (replication/restore).
set local session_replication_role = replica;
insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
values ('e0000000-0000-4000-8000-000000000011', 'authenticated', 'authenticated', 'missing1@example.com',
        '{"provider": "github", "providers": ["github"]}', '{"user_name": "missing-one"}', now(), now()),
       ('e0000000-0000-4000-8000-000000000012', 'authenticated', 'authenticated', 'missing2@example.com',
        '{"provider": "email", "providers": ["email"]}', '{}', now(), now());
-- Orphaned: auth user removed without the cascade.
delete from auth.users where id = 'e0000000-0000-4000-8000-000000000010';
set local session_replication_role = origin;
-- Missing: a profile deleted behind the system's back.
delete from public.users where id = 'e0000000-0000-4000-8000-000000000009';
-- Drifted: auth-owned columns changed behind the system's back.
update public.users set email = 'tampered@example.com' where id = 'e0000000-0000-4000-8000-000000000001';
update public.users set provider = 'forged', is_anonymous = true where id = 'e0000000-0000-4000-8000-000000000002';

select is(
  (select jsonb_build_object('missing', s -> 'missing', 'drifted', s -> 'drifted', 'orphaned', s -> 'orphaned')
   from user_sync.status() s),
  '{"missing": 3, "drifted": 2, "orphaned": 1}'::jsonb,
  'status() counts missing, drifted and orphaned profiles');
select is((user_sync.status() ->> 'auth_users')::int, (select auth_users from base) + 11, 'status() counts auth users');
select is((user_sync.status() ->> 'profiles')::int, (select auth_users from base) + 9, 'status() counts profiles');
select ok(user_sync.status() ? 'open_errors' and user_sync.status() ? 'last_run', 'status() has open_errors and last_run');

-- dry run ---------------------------------------------------------------------
create temp table snap as select u.*, u.xmin::text as x from public.users u;
create temp table dry as select user_sync.reconcile(true, 'test') as r;
select is(
  (select jsonb_build_object('dry_run', r -> 'dry_run', 'inserted', r -> 'inserted', 'updated', r -> 'updated', 'deleted', r -> 'deleted') from dry),
  '{"dry_run": true, "inserted": 3, "updated": 2, "deleted": 1}'::jsonb,
  'a dry run reports what it would do');
select ok((select r ? 'run_id' and r ? 'auth_users' and r ? 'profiles' and r ? 'unchanged' and r ? 'errors' and r ? 'duration_ms' and r ? 'source' from dry),
  'the report has run_id, source, auth_users, profiles, unchanged, errors and duration_ms');
select is_empty(
  $$(select id, x from snap except select id, xmin::text from public.users)
    union all (select id, xmin::text from public.users except select id, x from snap)$$,
  'a dry run changes no profile (same rows, same row versions)');

-- real run --------------------------------------------------------------------
create temp table real_run as select user_sync.reconcile(false, 'test') as r;
select is(
  (select jsonb_build_object('inserted', r -> 'inserted', 'updated', r -> 'updated', 'deleted', r -> 'deleted', 'status', r -> 'status', 'skipped', r -> 'skipped') from real_run),
  '{"inserted": 3, "updated": 2, "deleted": 1, "status": "ok", "skipped": false}'::jsonb,
  'reconcile inserts the missing, updates the drifted and removes the orphaned');
select is((select (r ->> 'unchanged')::int from real_run), (select auth_users from base) + 11 - 3 - 2,
  'unchanged counts the rest');
select results_eq(
  $$select id::text, email, name from public.users where id in (
      'e0000000-0000-4000-8000-000000000001', 'e0000000-0000-4000-8000-000000000009',
      'e0000000-0000-4000-8000-000000000011', 'e0000000-0000-4000-8000-000000000012') order by id$$,
  $$values ('e0000000-0000-4000-8000-000000000001', 'recon1@example.com', 'Recon 1'),
           ('e0000000-0000-4000-8000-000000000009', 'recon9@example.com', 'Recon 9'),
           ('e0000000-0000-4000-8000-000000000011', 'missing1@example.com', 'missing-one'),
           ('e0000000-0000-4000-8000-000000000012', 'missing2@example.com', 'missing2')$$,
  'healed profiles carry current auth data');
select results_eq(
  $$select provider, is_anonymous from public.users where id = 'e0000000-0000-4000-8000-000000000002'$$,
  $$values ('email', false)$$, 'forged auth-owned columns are restored');
select is((select count(*)::int from public.users where id = 'e0000000-0000-4000-8000-000000000010'), 0, 'the orphan is gone');
select is(
  (select jsonb_build_object('missing', s -> 'missing', 'drifted', s -> 'drifted', 'orphaned', s -> 'orphaned')
   from user_sync.status() s),
  '{"missing": 0, "drifted": 0, "orphaned": 0}'::jsonb,
  'status() is clean after reconcile');
select results_eq(
  $$select source, dry_run, status, inserted, updated, deleted from user_sync.runs order by id desc limit 2$$,
  $$values ('test', false, 'ok', 3::bigint, 2::bigint, 1::bigint), ('test', true, 'ok', 3::bigint, 2::bigint, 1::bigint)$$,
  'both runs are logged in user_sync.runs');
select is((user_sync.status() -> 'last_run' ->> 'run_id')::bigint, (select (r ->> 'run_id')::bigint from real_run),
  'status().last_run is the latest run');

-- second run writes nothing ---------------------------------------------------------
create temp table snap2 as select u.id, u.xmin::text as x from public.users u;
create temp table writes_before as select
  pg_stat_get_xact_tuples_inserted('public.users'::regclass) as i,
  pg_stat_get_xact_tuples_updated('public.users'::regclass) as u,
  pg_stat_get_xact_tuples_deleted('public.users'::regclass) as d;
create temp table second_run as select user_sync.reconcile(false, 'test') as r;
select is(
  (select jsonb_build_object('inserted', r -> 'inserted', 'updated', r -> 'updated', 'deleted', r -> 'deleted') from second_run),
  '{"inserted": 0, "updated": 0, "deleted": 0}'::jsonb,
  'a second reconcile finds nothing to do');
select is(
  (select array[pg_stat_get_xact_tuples_inserted('public.users'::regclass) - i,
                pg_stat_get_xact_tuples_updated('public.users'::regclass) - u,
                pg_stat_get_xact_tuples_deleted('public.users'::regclass) - d] from writes_before),
  array[0, 0, 0]::bigint[],
  'a second reconcile writes zero rows (table statistics)');
select is_empty($$select id, x from snap2 except select id, xmin::text from public.users$$,
  'a second reconcile leaves every row version untouched');

-- an overlapping run is skipped at once --------------------------------------------------
-- This transaction ran reconcile, so it holds the run lock until it ends; a reconcile
-- from another session (a cron call, an admin's click) must not wait for it.
select dblink_connect('other', format('host=127.0.0.1 port=%s dbname=postgres user=supabase_admin password=postgres', current_setting('port')));
select dblink_exec('other', 'set statement_timeout = 2000');
create temp table overlapped as
  select r::jsonb as r from dblink('other', 'select user_sync.reconcile(false, ''other'')::text') as t(r text);
select is((select r ->> 'skipped' from overlapped), 'true', 'an overlapping reconcile returns skipped: true at once');
select is((select r ->> 'source' from overlapped), 'other', 'the skipped report names its source');
select is(
  (select status from dblink('other', format('select status from user_sync.runs where id = %s', (select r ->> 'run_id' from overlapped))) as t(status text)),
  'skipped', 'the skipped run is logged as skipped');
select is(
  (select n from dblink('other', 'select count(*)::int from public.users u where u.id::text like ''e0000000-%''') as t(n int)),
  0, 'the skipped run wrote no profile');
select dblink_disconnect('other');

-- bad arguments are refused ---------------------------------------------------------------
select throws_ok($$select user_sync.reconcile(false, 'DROP TABLE')$$, '22023', null, 'an invalid source is refused');
select throws_ok($$select user_sync.reconcile(null, 'test')$$, '22004', null, 'a null dry_run is refused');
select throws_ok($$select user_sync.sync_user(null)$$, '22004', null, 'sync_user(null) is refused');
select is(user_sync.sync_user('e0000000-0000-4000-8000-999999999999'), 'unchanged', 'sync_user of an unknown id changes nothing');

select * from finish();
rollback;
