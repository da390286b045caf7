-- Under reconcile's planner settings (nested loops and merge joins off, so that its
-- batches hash each side once when statistics are stale), the parts of a pass that look
-- up a handful of users do so by primary key: finding the profiles logged as deleted,
-- deleting orphaned profiles (which fires the log's trigger), resolving open errors. A
-- hash join there reads a whole table for a few users (seconds at 10M users, in a call
-- bounded to 1 s).
begin;
select plan(9);

insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
select gen_random_uuid(), 'authenticated', 'authenticated', 'key' || g || '@example.com',
       '{"provider": "email", "providers": ["email"]}', '{}', now(), now()
from generate_series(1, 3000) g;
analyze auth.users;
analyze public.users;
delete from user_sync.deleted_profiles; -- what other tests left
-- Two open errors from an earlier run: one user now in sync, one whose profile is missing.
insert into user_sync.errors (user_id, source, sqlstate, message)
select id, 'trigger', 'XX000', 'test' from auth.users where email in ('key1@example.com', 'key2@example.com');
delete from public.users where email = 'key2@example.com';

-- Two orphaned profiles (their auth users deleted under replica mode, as by a restore).
create temporary table orphans as select id from auth.users where email in ('key3@example.com', 'key4@example.com');
set local session_replication_role = replica;
delete from auth.users where id in (select id from orphans);
set local session_replication_role = origin;

set local enable_nestloop = off;
set local enable_mergejoin = off;
set local max_parallel_workers_per_gather = 0;
create temporary table scans_before as
  select relid, seq_scan from pg_stat_xact_user_tables where relid in ('auth.users'::regclass, 'public.users'::regclass);

select lives_ok($$select user_sync.reconcile_plan_deleted(null, (pg_current_xact_id()::text::bigint + 1)::text::xid8, 100)$$, 'the logged deletions are looked at');
select is((select rows from user_sync.reconcile_apply('delete', array(select id from orphans), now(), null, null)), 2::bigint,
  'orphaned profiles are deleted');
select is(
  (select coalesce(sum(s.seq_scan - b.seq_scan), 0)::int
   from pg_stat_xact_user_tables s join scans_before b using (relid)),
  0, 'both by primary key: no sequential scan of auth.users or public.users');
select lives_ok($$select user_sync.reconcile_resolve_errors(null, null, -1)$$, 'open errors are resolved');
select is(
  (select coalesce(sum(s.seq_scan - b.seq_scan), 0)::int
   from pg_stat_xact_user_tables s join scans_before b using (relid)),
  0, 'resolving them too: no sequential scan of auth.users or public.users');
select is(
  (select array_agg(u.email::text order by u.email) from user_sync.errors e join auth.users u on u.id = e.user_id
   where e.resolved_at is null),
  array['key2@example.com'],
  'the one of the user now in sync, not the one whose profile is still missing');
select is((select count(*)::int from public.users where id in (select id from orphans)), 0, 'the orphans are gone');

-- Thousands of open errors (a profile table broken during sign-ups) stay linear: their
-- users are compared as sets, never the errors against the rules row by row.
insert into user_sync.errors (user_id, source, sqlstate, message)
select id, 'trigger', 'XX000', 'test' from auth.users where email like 'key%';
set local session_replication_role = replica; -- (behind the guard's back)
update public.users set email = 'drifted.' || email where email in ('key5@example.com', 'key6@example.com');
set local session_replication_role = origin;
select lives_ok($$select user_sync.reconcile_resolve_errors(null, null, -1)$$, '3,000 open errors are resolved');
select is(
  (select array_agg(distinct u.email::text order by u.email::text) from user_sync.errors e join auth.users u on u.id = e.user_id
   where e.resolved_at is null),
  array['key2@example.com', 'key5@example.com', 'key6@example.com'],
  'all but those of the users still missing or drifted');

select * from finish();
rollback;
