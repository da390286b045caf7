-- What bounds the 1% drift heal at scale: the same rows written by plain SQL. Makes the
-- bench's 1% drift (bench/heal.ts: a third of the profiles deleted, a third of the profile
-- e-mails tampered with, a third of the auth users renamed; the ids chosen first, so that
-- only the writes are timed), then heals it in calls of 1 s (bench/sql/heal-pass.sql) and
-- reports the WAL and the blocks read from outside shared buffers during the heal, and a
-- heap scan of both tables (the goal's floor). On a kept benchmark cluster, as a superuser:
--   psql -X -h 127.0.0.1 -p $PORT -U supabase_admin -d postgres -v tag=1 -f bench/sql/drift-writes.sql
-- (tag: any new text per run, so that each run picks other users)
\timing on
select (count(*) / 300)::int as third from auth.users \gset
create temp table drift_deleted as select id from public.users order by hashtext(id::text || :'tag' || 'd') limit :third;
create temp table drift_tampered as select id from public.users order by hashtext(id::text || :'tag' || 'e') limit :third;
create temp table drift_renamed as select id from auth.users order by hashtext(id::text || :'tag' || 'n') limit :third;
\echo the drift, its writes only (no trigger of ours: replica mode)
begin;
set local session_replication_role = replica;
delete from public.users where id in (select id from drift_deleted);
update public.users set email = 'drift.' || email where id in (select id from drift_tampered);
update auth.users set raw_user_meta_data = raw_user_meta_data || jsonb_build_object('full_name', 'Renamed ' || :'tag')
  where id in (select id from drift_renamed);
commit;
checkpoint;
create temp table wal_before as select wal_records, wal_fpi, wal_bytes from pg_stat_wal;
create temp table reads_before as
  select sum(heap_blks_read) as heap, sum(idx_blks_read) as idx from pg_statio_all_tables
  where relid in ('auth.users'::regclass, 'public.users'::regclass);
\echo the heal
\i bench/sql/heal-pass.sql
select pg_stat_force_next_flush();
select w.wal_records - b.wal_records as wal_records, w.wal_fpi - b.wal_fpi as full_page_images,
       pg_size_pretty(w.wal_bytes - b.wal_bytes) as wal
from pg_stat_wal w, wal_before b;
select s.heap - b.heap as heap_blocks_read, s.idx - b.idx as index_blocks_read
from (select sum(heap_blks_read) as heap, sum(idx_blks_read) as idx from pg_statio_all_tables
      where relid in ('auth.users'::regclass, 'public.users'::regclass)) s, reads_before b;
select status->'missing' as missing, status->'drifted' as drifted, status->'orphaned' as orphaned
from (select user_sync.status() as status) s;
\echo the floor: a heap scan of both tables
select sum(length(xmin::text)) from auth.users;
select sum(length(xmin::text)) from public.users;
