-- What the admin-search trigram indexes cost a cold heal, and the index settings tried
-- (issue 12): the profiles of about 20,000 users (one stretch of auth.users) removed and
-- inserted again the way reconcile inserts them, in a transaction rolled back, under
-- each setting. Run on a database with in-sync profiles (as heal-explain.sql):
--   psql -X -h 127.0.0.1 -p $PORT -U supabase_admin -d postgres \
--     -f bench/sql/search-index-cost.sql > bench/search-index-cost-1m.txt
\pset pager off
set jit = off;
select format('(%s,65535)', (20000 / (reltuples / relpages))::bigint - 1) as upto_cold from pg_class where oid = 'auth.users'::regclass \gset
select string_agg(quote_ident(a.attname), ', ' order by a.attnum) as cols from pg_attribute a where a.attrelid = 'user_sync.expected_profile'::regclass and a.attnum > 0 and not a.attisdropped \gset
select string_agg('d.' || quote_ident(a.attname), ', ' order by a.attnum) as vals from pg_attribute a where a.attrelid = 'user_sync.expected_profile'::regclass and a.attnum > 0 and not a.attisdropped \gset
-- The insert of reconcile for those users (the rules over auth.users, as expected_profiles_sql).
select format('insert into public.users (%s, updated_at, synced_at) select %s, now(), now() from (%s where au.ctid > ''(0,0)'' and au.ctid <= %L) d', :'cols', :'vals', user_sync.expected_profiles_sql(), :'upto_cold') as ins \gset
-- The stretch's profiles removed without our triggers.
\set del 'set local session_replication_role = replica; delete from public.users where id in (select au.id from auth.users au where au.ctid > \'(0,0)\' and au.ctid <= ' :'upto_cold' '); set local session_replication_role = origin;'

\echo == A: as is (two trigram GIN, fastupdate on, 4MB)
begin; :del
\timing on
:ins;
\timing off
rollback;
begin; :del
\timing on
:ins;
\timing off
rollback;
\echo == B: gin_pending_list_limit 64MB
begin; :del
alter index public.users_email_trgm_idx set (gin_pending_list_limit = 65536);
alter index public.users_name_trgm_idx set (gin_pending_list_limit = 65536);
\timing on
:ins;
\timing off
rollback;
\echo == C: fastupdate off
begin; :del
alter index public.users_email_trgm_idx set (fastupdate = off);
alter index public.users_name_trgm_idx set (fastupdate = off);
\timing on
:ins;
\timing off
rollback;
\echo == D: one combined trigram index (email, name)
begin; :del
drop index public.users_email_trgm_idx; drop index public.users_name_trgm_idx;
create index users_search_trgm_idx on public.users using gin ((coalesce(email, '') || ' ' || coalesce(name, '')) extensions.gin_trgm_ops);
\timing on
:ins;
\timing off
rollback;
\echo == E: no trigram index
begin; :del
drop index public.users_email_trgm_idx; drop index public.users_name_trgm_idx;
\timing on
:ins;
\timing off
rollback;
\echo == A again
begin; :del
\timing on
:ins;
\timing off
rollback;
