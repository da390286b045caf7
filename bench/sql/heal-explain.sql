-- What bounds reconcile at scale: EXPLAIN (ANALYZE, BUFFERS) of one batch of each phase
-- and of the floors, on the database `npm run bench -- heal` leaves running with
-- USER_SYNC_BENCH_KEEP=1 (every user with an in-sync profile). Writes are rolled back.
--   psql -X -h 127.0.0.1 -p $USER_SYNC_BENCH_DB_PORT -U supabase_admin -d postgres \
--     -f bench/sql/heal-explain.sql > bench/heal-explain-1m.txt
\pset pager off
set jit = off;
vacuum (analyze) auth.users, public.users;
select count(*) as auth_users, pg_relation_size('auth.users') / 8192 as auth_heap_pages,
       pg_relation_size('auth.users_pkey') / 8192 as auth_pkey_pages,
       pg_relation_size('public.users') / 8192 as profile_heap_pages,
       pg_relation_size('public.users_pkey') / 8192 as profile_pkey_pages
from auth.users;

\echo '== floor: heap scan of both tables (the no-op / first pass / drift goals) =='
explain (analyze, buffers) select sum(length(xmin::text)) from auth.users;
explain (analyze, buffers) select sum(length(xmin::text)) from public.users;

-- A stretch of about 100,000 users (the tenth of a no-op batch at 10M is similar).
select (100000 / (reltuples / relpages))::bigint as blocks from pg_class where oid = 'auth.users'::regclass \gset
select format('(%s,65535)', :blocks - 1) as upto_auth \gset
select (100000 / (reltuples / relpages))::bigint as pblocks from pg_class where oid = 'public.users'::regclass \gset
select format('(%s,65535)', :pblocks - 1) as upto_profiles \gset
select horizon::text as since from user_sync.reconcile_progress where not dry_run \gset
select (pg_current_xact_id()::text::bigint - :'since'::bigint) as age \gset

-- Written once, used twice each below: the insert of reconcile (the columns of
-- user_sync.expected_profile plus the two stamps) and the id merge of 1% of the id space.
select string_agg(quote_ident(a.attname), ', ' order by a.attnum) as expected_columns
from pg_attribute a where a.attrelid = 'user_sync.expected_profile'::regclass and a.attnum > 0 and not a.attisdropped \gset
select string_agg('d.' || quote_ident(a.attname), ', ' order by a.attnum) as expected_values
from pg_attribute a where a.attrelid = 'user_sync.expected_profile'::regclass and a.attnum > 0 and not a.attisdropped \gset
\set insert_profiles 'insert into public.users (' :expected_columns ', updated_at, synced_at) select ' :expected_values ', now(), now()'
\set id_merge 'select coalesce(array_agg(a.id) filter (where p.id is null), \'{}\'), coalesce(array_agg(p.id) filter (where a.id is null), \'{}\') from (select au.id from auth.users au where au.id <= \'028f5c28-ffff-ffff-ffff-ffffffffffff\') a full join (select u.id from public.users u where u.id <= \'028f5c28-ffff-ffff-ffff-ffffffffffff\') p on p.id = a.id where a.id is null or p.id is null'

\echo '== no-op, phase auth: one stretch of auth.users in physical order (TID Range Scan) =='
explain (analyze, buffers)
select count(*), coalesce(array_agg(au.id) filter (where age(au.xmin) <= :age), '{}')
from auth.users au where au.ctid > '(0,0)' and au.ctid <= :'upto_auth';

\echo '== no-op, phase profiles: one stretch of public.users in physical order =='
explain (analyze, buffers)
select count(*), coalesce(array_agg(u.id) filter (where age(u.xmin) <= :age and not u.xmin = any('{}'::xid[])), '{}')
from public.users u where u.ctid > '(0,0)' and u.ctid <= :'upto_profiles';

\echo '== no-op, phase ids: one id range of both primary keys (index-only merge, 1% of the id space) =='
set enable_hashjoin = off; set enable_nestloop = off; set enable_mergejoin = on;
explain (analyze, buffers) :id_merge;
reset enable_hashjoin; reset enable_nestloop; reset enable_mergejoin;

\echo '== cold heal: the FK-insert floor for the users of one stretch of about 20,000 users =='
select format('(%s,65535)', (20000 / (reltuples / relpages))::bigint - 1) as upto_cold from pg_class where oid = 'auth.users'::regclass \gset
-- The profiles of that stretch's users removed, without our triggers (used twice below).
\set remove_cold_profiles 'set local session_replication_role = replica; delete from public.users where id in (select au.id from auth.users au where au.ctid > \'(0,0)\' and au.ctid <= ' :'upto_cold' '); set local session_replication_role = origin;'
begin;
explain (analyze, buffers)
insert into bench.scratch_fk select id, email from auth.users au where au.ctid > '(0,0)' and au.ctid <= :'upto_cold';
rollback;

\echo '== cold heal: the same users, their profiles missing: plan (TID range + lookups) and insert step =='
begin;
:remove_cold_profiles
set local enable_nestloop = off; set local enable_mergejoin = off;
explain (analyze, buffers) select auth_users, cardinality(missing) from user_sync.reconcile_plan_auth('(0,0)', :'upto_cold', null, 100000);
create temp table cold_missing on commit drop as select missing from user_sync.reconcile_plan_auth('(0,0)', :'upto_cold', null, 100000);
select format($q$explain (analyze, buffers)
  with done as (
    %s
    from (%s where au.ctid > '(0,0)' and au.ctid <= %L) d
    where d.id = any(%L)
    on conflict (id) do nothing
    returning xmin)
  select count(*) from done$q$, :'insert_profiles', user_sync.expected_profiles_sql(), :'upto_cold', (select missing from cold_missing)) as q \gset
:q;
rollback;

\echo '== cold heal: what the profile table itself costs: the same rows into public.users without its trigram indexes and triggers =='
begin;
:remove_cold_profiles
set local session_replication_role = replica;
drop index public.users_email_trgm_idx;
drop index public.users_name_trgm_idx;
create temp table cold_missing2 on commit drop as select missing from user_sync.reconcile_plan_auth('(0,0)', :'upto_cold', null, 100000);
select format($q$explain (analyze, buffers)
  %s
  from (%s where au.ctid > '(0,0)' and au.ctid <= %L) d
  where d.id = any(%L)$q$, :'insert_profiles', user_sync.expected_profiles_sql(), :'upto_cold', (select missing from cold_missing2)) as q \gset
:q;
rollback;

\echo '== 1% drift: the id merge of the same range after 1% of the profiles were written (pages no longer all-visible) =='
begin;
set local session_replication_role = replica;
update public.users set email = email where id in (select id from public.users order by hashtext(id::text || 'x') limit (select count(*) / 100 from public.users));
set local enable_hashjoin = off; set local enable_nestloop = off; set local enable_mergejoin = on;
explain (analyze, buffers) :id_merge;
rollback;
