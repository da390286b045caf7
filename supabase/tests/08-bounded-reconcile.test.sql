-- Bounded, resumable reconcile: a call with p_max_ms stops after one batch when its
-- budget is spent and the next call continues where it stopped; status() shows the
-- unfinished heal; only a complete pass hands on a horizon, the one taken at its
-- start; a failing row is isolated and recorded while the rest of its batch goes
-- through; the daily full comparison; the signature and its grants.
begin;
select plan(38);

-- signature ----------------------------------------------------------------------------
select function_returns('user_sync', 'reconcile', array['boolean', 'text', 'integer'], 'jsonb',
  'reconcile(p_dry_run, p_source, p_max_ms) returns jsonb');
select hasnt_function('user_sync', 'reconcile', array['boolean', 'text'], 'the two-argument reconcile is gone');
select ok(has_function_privilege('service_role', 'user_sync.reconcile(boolean, text, integer)', 'execute')
  and not has_function_privilege('anon', 'user_sync.reconcile(boolean, text, integer)', 'execute')
  and not has_function_privilege('authenticated', 'user_sync.reconcile(boolean, text, integer)', 'execute'),
  'only service_role may call reconcile');
select throws_ok($$select user_sync.reconcile(false, 'test', -1)$$, '22023', null, 'a negative budget is refused');

-- start from an empty table in sync (rows from elsewhere are removed in this transaction),
-- then 25 auth users without profiles: a pass walks them in physical order, the order
-- they were inserted in
set local session_replication_role = replica;
delete from public.users;
delete from auth.users;
set local session_replication_role = origin;
select user_sync.reconcile(false, 'test');
set local session_replication_role = replica;
insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
select ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'authenticated', 'authenticated',
       'bounded' || i || '@example.com', '{"provider": "email", "providers": ["email"]}',
       jsonb_build_object('full_name', 'Bounded ' || i), now(), now()
from generate_series(1, 25) i;
set local session_replication_role = origin;
set local user_sync.reconcile_batch_rows = 10;

-- a bounded call ------------------------------------------------------------------------
create temp table c1 as select user_sync.reconcile(false, 'test', 0) as r;
select is((select jsonb_build_object('complete', r -> 'complete', 'inserted', r -> 'inserted', 'skipped', r -> 'skipped', 'status', r -> 'status') from c1),
  '{"complete": false, "inserted": 10, "skipped": false, "status": "ok"}'::jsonb,
  'a call out of budget stops after one batch: complete false, 10 inserted');
select ok((select (r ->> 'remaining')::bigint > 0 from c1), 'it reports users remaining');
select ok((select r ? 'run_id' and r ? 'auth_users' and r ? 'profiles' and r ? 'updated' and r ? 'deleted'
                  and r ? 'unchanged' and r ? 'errors' and r ? 'error' and r ? 'duration_ms' and r ? 'source' and r ? 'dry_run' from c1),
  'the report keeps every key');
select is((select count(*)::int from public.users where id::text like '00000000-0000-4000-8000-%'), 10,
  'the first batch''s profiles exist');
select is((select horizon from user_sync.runs where id = (select (r ->> 'run_id')::bigint from c1)), null,
  'an incomplete call hands on no horizon');
create temp table pass_start as select horizon from user_sync.reconcile_progress where not dry_run;
select ok((select h ? 'examined' and h ? 'total' and h ? 'rate' and h ? 'eta_seconds' and h ? 'started_at'
                  and (h ->> 'examined')::int = 10 from (select user_sync.status() -> 'heal' as h) s),
  'status() shows the unfinished heal: examined, total, rate, eta_seconds, started_at');
select is(user_sync.heal_progress() - 'rate' - 'eta_seconds', (user_sync.status() -> 'heal') - 'rate' - 'eta_seconds',
  'heal_progress() answers status().heal without the counts (rate and eta_seconds move with the clock)');
select ok(has_function_privilege('service_role', 'user_sync.heal_progress()', 'execute')
  and not has_function_privilege('anon', 'user_sync.heal_progress()', 'execute')
  and not has_function_privilege('authenticated', 'user_sync.heal_progress()', 'execute'),
  'only service_role may read heal_progress()');

-- the next call continues; a dry run in between does not move the real pass -----------------
create temp table d1 as select user_sync.reconcile(true, 'test', 0) as r;
select is((select jsonb_build_object('inserted', r -> 'inserted', 'examined', r -> 'examined', 'complete', r -> 'complete') from d1),
  '{"inserted": 0, "examined": 10, "complete": false}'::jsonb,
  'a bounded dry run walks a pass of its own (its first batch is the one already healed)');
select is((select examined from user_sync.reconcile_progress where not dry_run), 10::bigint,
  'the dry run left the real pass where it was');
-- a profile the pass already examined changes behind its back
update public.users set email = 'tampered@example.com' where id = '00000000-0000-4000-8000-000000000001';
create temp table c2 as select user_sync.reconcile(false, 'test', 0) as r;
select is((select (r ->> 'inserted')::int from c2), 10, 'the next call continues with the next batch');
select is((select count(*)::int from public.users where id::text like '00000000-0000-4000-8000-%'), 20,
  'twenty profiles, none twice');

-- a call without a budget finishes the pass --------------------------------------------------
create temp table c3 as select user_sync.reconcile(false, 'test') as r;
select is((select jsonb_build_object('complete', r -> 'complete', 'remaining', r -> 'remaining', 'status', r -> 'status') from c3),
  '{"complete": true, "remaining": 0, "status": "ok"}'::jsonb, 'a call without a budget completes the pass');
select is((select count(*)::int from public.users where id::text like '00000000-0000-4000-8000-%'), 25,
  'every profile exists once');
select is((select horizon from user_sync.runs where id = (select (r ->> 'run_id')::bigint from c3)),
  (select horizon from pass_start), 'the complete pass hands on the horizon taken at its start (its first call)');
select ok((select (r ->> 'auth_users')::bigint = (r ->> 'examined')::bigint from c3), 'the complete call reports the auth users it saw');
select is(user_sync.status() -> 'heal', 'null'::jsonb, 'status().heal is null when no pass is unfinished');
select is(user_sync.heal_progress(), null, 'heal_progress() is null when no pass is unfinished');

-- the next (incremental) pass still finds what changed behind the cursor ----------------------------
create temp table c4 as select user_sync.reconcile(false, 'test') as r;
select is((select jsonb_build_object('updated', r -> 'updated', 'full_compare', r -> 'full_compare') from c4),
  '{"updated": 1, "full_compare": false}'::jsonb,
  'the next pass is incremental and heals the profile changed behind the cursor');
select is((select email from public.users where id = '00000000-0000-4000-8000-000000000001'), 'bounded1@example.com',
  'the tampered email is restored');

-- a failing row is isolated and recorded; its batch goes through ------------------------------------
alter table public.users add constraint app_rule check (email is distinct from 'bounded-bad@example.com') not valid;
set local session_replication_role = replica;
insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
select ('00000000-0000-4000-8000-1' || lpad(i::text, 11, '0'))::uuid, 'authenticated', 'authenticated',
       case when i = 4 then 'bounded-bad@example.com' else 'bounded-late' || i || '@example.com' end,
       '{"provider": "email", "providers": ["email"]}', '{}', now(), now()
from generate_series(1, 8) i;
set local session_replication_role = origin;
create temp table c5 as select user_sync.reconcile(false, 'test') as r;
select is((select jsonb_build_object('inserted', r -> 'inserted', 'errors', r -> 'errors', 'status', r -> 'status', 'complete', r -> 'complete') from c5),
  '{"inserted": 7, "errors": 1, "status": "errors", "complete": true}'::jsonb,
  'one row breaking an app constraint: the other 7 of its batch are inserted, 1 error');
select results_eq(
  $$select user_id::text, sqlstate from user_sync.errors where run_id = (select (r ->> 'run_id')::bigint from c5)$$,
  $$values ('00000000-0000-4000-8000-100000000004', '23514')$$,
  'the failing user is recorded in user_sync.errors');
select is((select horizon from user_sync.runs where id = (select (r ->> 'run_id')::bigint from c5)), null,
  'a pass with errors hands on no horizon');
create temp table c6 as select user_sync.reconcile(false, 'test') as r;
select is((select (r ->> 'full_compare')::boolean from c6), true, 'after a pass with errors the next one compares every profile');

-- the daily full comparison ---------------------------------------------------------------------------
alter table public.users drop constraint app_rule;
select user_sync.reconcile(false, 'test');
select is((select (user_sync.reconcile(false, 'test') ->> 'full_compare')::boolean), false,
  'within a day of a full comparison, passes are incremental');
-- a day later (the last full comparison moved back by 25 hours)
update user_sync.reconcile_progress set last_full_compare_at = last_full_compare_at - interval '25 hours';
select is((select (user_sync.reconcile(false, 'test') ->> 'full_compare')::boolean), true,
  'once user_sync.config.full_compare_every (a day) has passed, a pass compares every profile');

-- a table the planner has no statistics of (a bulk import, a restore): the progress still tells
-- how far a heal is, from a sample of the table's pages ----------------------------------------------
set local session_replication_role = replica;
insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
select gen_random_uuid(), 'authenticated', 'authenticated', 'imported' || i || '@example.com',
       '{"provider": "email", "providers": ["email"]}', '{}', now(), now()
from generate_series(1, 100000) i;
set local session_replication_role = origin;
update pg_catalog.pg_class set reltuples = -1, relpages = 0 where oid = 'auth.users'::regclass;
set local user_sync.reconcile_batch_rows = 1000;
create temp table c7 as select user_sync.reconcile(false, 'test', 0) as r;
select ok((select (r ->> 'complete')::boolean = false and (r ->> 'examined')::bigint between 1 and 5000 from c7),
  'a call out of budget walks one batch of the 100,000 imported users');
-- (a range: the sample reads 64 stretches of the table, which earlier runs of this suite may
-- have left holes in)
select ok((select (r ->> 'total')::bigint between 50000 and 200000
             and (r ->> 'remaining')::bigint = (r ->> 'total')::bigint - (r ->> 'examined')::bigint from c7),
  'its total is estimated from a sample (about 100,000 users), not its own count; remaining is the rest');
select ok((select (h ->> 'eta_seconds')::bigint > 0 from (select user_sync.heal_progress() as h) x),
  'heal_progress() gives a time left');
-- a total estimated low (statistics from before a bulk insert) is raised to what the walk of
-- auth.users has read, so the progress bar does not stand full while the walk goes on
select is(user_sync.reconcile_walked_estimate(jsonb_populate_record(null::user_sync.reconcile_progress,
    '{"phase": "auth", "examined": 1000, "walk_after": "(9,5)", "walk_blocks": 100}')), 10000::bigint,
  'a walk that counted 1,000 users in the first 10 of its 100 pages says about 10,000');
select is(user_sync.reconcile_walked_estimate(jsonb_populate_record(null::user_sync.reconcile_progress,
    '{"phase": "profiles", "examined": 1000, "walk_after": "(9,5)", "walk_blocks": 100}')), null,
  'no such estimate outside the walk of auth.users');

-- statistics that say the tables are empty (analyzed while they were: a new install, tables
-- emptied before an import) do not make a batch read whole indexes ---------------------------------
update pg_catalog.pg_class set reltuples = 0, relpages = 1 where oid in ('auth.users'::regclass, 'public.users'::regclass);
create temp table idx_before as
  select s.idx_tup_fetch from pg_catalog.pg_stat_xact_user_tables s where s.relid = 'auth.users'::regclass;
create temp table c8 as select user_sync.reconcile(false, 'test', 0) as r;
select ok((select (r ->> 'examined')::bigint > (select (r ->> 'examined')::bigint from c7) from c8),
  'the next call walks the next batch of the imported users');
select cmp_ok(
  (select s.idx_tup_fetch - (select b.idx_tup_fetch from pg_temp.idx_before b)
   from pg_catalog.pg_stat_xact_user_tables s where s.relid = 'auth.users'::regclass),
  '<', 10000::bigint,
  'its lookups fetch a few thousand of the 100,000 auth users by index, not all of them');
-- public.users holding far more profiles than its statistics say is analyzed by the next call
insert into public.users (id, email)
select au.id, au.email from auth.users au
where au.email like 'imported%' and not exists (select 1 from public.users u where u.id = au.id)
limit 5000;
update pg_catalog.pg_class set reltuples = 0, relpages = 1 where oid = 'public.users'::regclass;
select ok(user_sync.refresh_profile_statistics()
    and (select c.reltuples >= 5000 from pg_catalog.pg_class c where c.oid = 'public.users'::regclass),
  'statistics of public.users that say it is empty while it holds thousands of profiles are refreshed');

select * from finish();
rollback;
