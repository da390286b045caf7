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
