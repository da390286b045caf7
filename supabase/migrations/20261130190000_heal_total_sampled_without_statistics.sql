-- -----------------------------------------------------------------------------
-- 0.5.0: a heal's progress where the planner has no statistics of auth.users.
--   * A pass takes how many users it has to examine from the planner's statistics, and
--     counts them when the table is small (up to 100,000). A large table without
--     statistics (a bulk import, or a restore that autovacuum has not analyzed yet) left
--     it without a total, so each call reported its own count as the total: `remaining`
--     0, an ETA of 0 and a full progress bar after every call of an unfinished heal. Such a
--     table is now sampled (user_sync.sampled_rows: 64 stretches of 4 pages spread over it).
-- Current definitions: supabase/schemas/15_table_estimates.sql, 80_reconcile.sql.
-- -----------------------------------------------------------------------------

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

  -- The planner's estimate; where it has no statistics (never analyzed, or empty then),
  -- counted up to 100,000, and sampled above (a bulk import, a restore), so that an
  -- unfinished heal's progress has a total to go by.
  v_total := user_sync.estimated_rows('auth.users');
  if v_total is null then
    select count(*) into v_total from (select 1 from auth.users limit 100000) x;
    if v_total = 100000 then
      v_total := user_sync.sampled_rows('auth.users');
    end if;
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
