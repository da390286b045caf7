-- -----------------------------------------------------------------------------
-- How many rows a table holds, estimated without counting them: what a total shown to an
-- admin (public.list_users) and a heal's progress (reconcile) read at ten million users,
-- where count(*) is a scan of every row.
-- -----------------------------------------------------------------------------

-- The planner's estimate: rows per page as of the last VACUUM or ANALYZE
-- (pg_class.reltuples over relpages) times the pages the table has now, so that a bulk
-- insert shows at once and not only after the next autovacuum (a heal of a million
-- profiles was listed as "about 500,001" until then). Null when the table was never
-- analyzed or was empty then: the caller counts instead. Reads only what pg_class and
-- pg_relation_size() tell every role.
create or replace function user_sync.estimated_rows(p_table regclass) returns bigint
language sql
stable
set search_path = ''
as $$
  select case when c.relpages > 0 and c.reltuples > 0 then
    (c.reltuples / c.relpages
      * (pg_catalog.pg_relation_size(c.oid) / pg_catalog.current_setting('block_size')::integer))::bigint end
  from pg_catalog.pg_class c
  where c.oid = p_table;
$$;
comment on function user_sync.estimated_rows(regclass) is
  'Rows of a table estimated as the planner does: reltuples per relpages times its pages now; null when never analyzed or empty then.';
revoke execute on function user_sync.estimated_rows(regclass) from public, anon;
grant execute on function user_sync.estimated_rows(regclass) to authenticated, service_role;

-- The rows of a table the planner has no statistics of yet (a bulk import, or a restore
-- that autovacuum has not analyzed): counted in up to 64 stretches of 4 pages spread evenly
-- over the table (TID Range Scans: at most 256 pages read, a few milliseconds at any size),
-- scaled to the pages it has. Null for a table without pages.
create or replace function user_sync.sampled_rows(p_table regclass) returns bigint
language plpgsql
stable
set search_path = ''
as $$
declare
  v_blocks bigint := pg_catalog.pg_relation_size(p_table) / pg_catalog.current_setting('block_size')::integer;
  v_samples integer;
  v_from bigint;
  v_to bigint;
  v_pages bigint := 0;
  v_rows bigint := 0;
  v_count bigint;
begin
  if v_blocks = 0 then
    return null;
  end if;
  v_samples := least(64, ceil(v_blocks / 4.0))::integer;
  for v_sample in 0 .. v_samples - 1 loop
    v_from := v_blocks * v_sample / v_samples;
    v_to := least(v_from + 4, v_blocks);
    execute format('select count(*) from %s t where t.ctid >= $1 and t.ctid < $2', p_table)
      into v_count using format('(%s,0)', v_from)::tid, format('(%s,0)', v_to)::tid;
    v_rows := v_rows + v_count;
    v_pages := v_pages + v_to - v_from;
  end loop;
  return round(v_rows::numeric / v_pages * v_blocks)::bigint;
end
$$;
comment on function user_sync.sampled_rows(regclass) is
  'Rows of a table estimated from up to 64 stretches of 4 pages spread evenly over it, times its pages; for tables the planner has no statistics of.';
revoke execute on function user_sync.sampled_rows(regclass) from public, anon, authenticated;
