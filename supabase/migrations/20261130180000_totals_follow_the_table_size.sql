-- -----------------------------------------------------------------------------
-- 0.5.0: totals that follow the table's size.
--   * public.list_users answered an admin's whole-table total (above 100,000 profiles)
--     with pg_class.reltuples: the row count of the last VACUUM or ANALYZE. Right after a
--     heal of a million profiles the dashboard listed "about 500,001" users beside
--     1,000,001 profiles until autovacuum ran. It now scales the rows per page of those
--     statistics by the pages the table has now, as the planner does
--     (user_sync.estimated_rows), which reconcile already did for a heal's total; both
--     read it from there.
-- Current definitions: supabase/schemas/15_table_estimates.sql, 75_admin_search.sql,
-- 80_reconcile.sql.
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

-- -----------------------------------------------------------------------------
-- public.list_users: the admin user list of @user-sync/client (listUsers), as one RPC:
-- a case-insensitive substring of email or name (LIKE wildcards taken literally),
-- role, provider, soft-deleted or not, order, page; answers {users, total,
-- total_is_estimate}. Security invoker: the caller's own rights decide (a user gets
-- their own row). The total is exact when anything is filtered; for the whole table
-- of an admin above 100,000 rows it is the planner's estimate (user_sync.estimated_rows).
-- A short page is the last one, so a selective search costs one index scan, not two.
-- The profiles themselves are read from public.users (by id, under RLS).
-- -----------------------------------------------------------------------------
create or replace function public.list_users(
  p_search text default null,
  p_role text default null,
  p_provider text default null,
  p_include_deleted boolean default false,
  p_order_by text default 'created_at',
  p_ascending boolean default false,
  p_limit integer default 50,
  p_offset integer default 0
) returns jsonb
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
  v_where text[] := array[]::text[];
  v_filter text;
  v_pattern text;
  v_total bigint;
  v_estimate boolean := false;
  v_ids uuid[];
begin
  if p_order_by is null or p_order_by not in ('created_at', 'email', 'name', 'last_sign_in_at', 'role') then
    raise exception using errcode = '22023', message = format('cannot order by %s', coalesce(p_order_by, 'null')),
      hint = 'Order by created_at, email, name, last_sign_in_at or role.';
  end if;
  if p_limit is null or p_limit < 0 or p_limit > 1000 or p_offset is null or p_offset < 0 then
    raise exception using errcode = '22023', message = 'p_limit must be 0..1000 and p_offset >= 0';
  end if;
  if nullif(btrim(p_search), '') is not null then
    v_pattern := '%' || replace(replace(replace(btrim(p_search), '\', '\\'), '%', '\%'), '_', '\_') || '%';
    v_where := v_where || format('(v.email ilike %1$L or v.name ilike %1$L)', v_pattern);
  end if;
  if p_role is not null then
    v_where := v_where || format('v.role = %L', p_role);
  end if;
  if p_provider is not null then
    v_where := v_where || format('v.provider = %L', p_provider);
  end if;
  if not coalesce(p_include_deleted, false) then
    v_where := v_where || 'v.deleted_at is null'::text;
  end if;
  v_filter := case when cardinality(v_where) > 0 then 'where ' || array_to_string(v_where, ' and ') else '' end;

  execute format(
    'select array_agg(s.id) from (select v.id from user_sync.listed_profiles v %s order by v.%I %s, v.id limit %s offset %s) s',
    v_filter, p_order_by, case when p_ascending then 'asc' else 'desc' end, p_limit, p_offset
  ) into v_ids;

  if v_pattern is null and p_role is null and p_provider is null and (select user_sync.is_admin()) then
    v_total := user_sync.estimated_rows('public.users');
    v_estimate := coalesce(v_total > 100000, false);
  end if;
  if not v_estimate then
    if coalesce(cardinality(v_ids), 0) between 1 and p_limit - 1 or (v_ids is null and p_offset = 0) then
      -- A short page is the last one: it tells the total without counting again.
      v_total := p_offset + coalesce(cardinality(v_ids), 0);
    else
      execute format('select count(*) from user_sync.listed_profiles v %s', v_filter) into v_total;
    end if;
  end if;

  return jsonb_build_object(
    'users', coalesce((
      select jsonb_agg(to_jsonb(u) order by array_position(v_ids, u.id))
      from public.users u where u.id = any(v_ids)
    ), '[]'::jsonb),
    'total', v_total,
    'total_is_estimate', v_estimate
  );
end
$$;
comment on function public.list_users(text, text, text, boolean, text, boolean, integer, integer) is
  'Admin user list (search over email and name, role, provider, deleted, order, page) for @user-sync/client: {users, total, total_is_estimate}. Users get only their own row.';
revoke execute on function public.list_users(text, text, text, boolean, text, boolean, integer, integer) from public, anon;
grant execute on function public.list_users(text, text, text, boolean, text, boolean, integer, integer) to authenticated, service_role;

-- Starts a pass of the given kind. It compares every profile when there is no
-- horizon to start from (first pass, errors, other basis, too old for 32-bit
-- transaction ids) or when the last full comparison is older than
-- user_sync.config.full_compare_every; otherwise only rows written since. Its own
-- horizon is taken now, at the start, never at the end. It begins with the walk of
-- auth.users over the pages the table has now.
create or replace function user_sync.reconcile_start_pass(
  p_dry_run boolean,
  p_run_id bigint,
  p_basis text,
  p_batch_rows integer
) returns user_sync.reconcile_progress
language plpgsql
set search_path = ''
as $$
declare
  v_from record;
  v_last_full timestamptz;
  v_full boolean;
  v_total bigint;
  v_pass user_sync.reconcile_progress;
begin
  select * into v_from from user_sync.reconcile_horizon(p_basis) h;
  select p.last_full_compare_at into v_last_full from user_sync.reconcile_progress p where not p.dry_run;
  v_full := v_from.since is null
    or v_last_full is null
    or v_last_full < now() - (select c.full_compare_every from user_sync.config c);

  -- The planner's estimate (counted when the table was never analyzed or was empty
  -- then, up to 100,000).
  v_total := user_sync.estimated_rows('auth.users');
  if v_total is null then
    select count(*) into v_total from (select 1 from auth.users limit 100000) x;
    if v_total = 100000 then v_total := null; end if;
  end if;

  insert into user_sync.reconcile_progress as p (
    dry_run, run_id, started_at, finished_at, full_compare, since, skip_xids, horizon, basis,
    last_id, examined, total, auth_users, profiles, errors, written_xids, batch_rows,
    last_full_compare_at, updated_at, phase, walk_after, walk_blocks, walked_profiles)
  values (
    p_dry_run, p_run_id, now(), null, v_full,
    case when not v_full then v_from.since end,
    case when not v_full then v_from.skip_xids else '{}' end,
    pg_snapshot_xmin(pg_current_snapshot()), p_basis,
    null, 0, v_total, 0, 0, 0, '{}', p_batch_rows,
    v_last_full, now(), 'auth', null,
    user_sync.reconcile_table_blocks('auth.users'), 0)
  on conflict (dry_run) do update set
    run_id = excluded.run_id, started_at = excluded.started_at, finished_at = null,
    full_compare = excluded.full_compare, since = excluded.since, skip_xids = excluded.skip_xids,
    horizon = excluded.horizon, basis = excluded.basis, last_id = null, examined = 0,
    total = excluded.total, auth_users = 0, profiles = 0, errors = 0, written_xids = '{}',
    batch_rows = excluded.batch_rows,
    -- a dry pass never finishes a full comparison of the real kind
    last_full_compare_at = case when p.dry_run then p.last_full_compare_at else excluded.last_full_compare_at end,
    updated_at = now(), phase = excluded.phase, walk_after = null, walk_blocks = excluded.walk_blocks,
    walked_profiles = 0, bucket_differences = null, merge_buckets = null
  returning * into v_pass;
  return v_pass;
end
$$;
comment on function user_sync.reconcile_start_pass(boolean, bigint, text, integer) is
  'Starts a reconcile pass (full or incremental comparison, horizon taken now) in user_sync.reconcile_progress.';
revoke execute on function user_sync.reconcile_start_pass(boolean, bigint, text, integer) from public, anon, authenticated;
