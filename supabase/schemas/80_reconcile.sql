-- -----------------------------------------------------------------------------
-- user_sync.reconcile: bring the whole table in line, in bounded, resumable calls.
--
-- A pass reads each table in physical order (block ranges, a TID Range Scan), so
-- that it reads every page once however the ids are spread, then pairs the ids of
-- both tables in id order from their primary keys (index-only). Its phases:
--   auth      walk auth.users: the candidates (every user in a full comparison, else
--             those written since the last finished pass) are looked up by id in
--             public.users; missing profiles are inserted, drifted ones updated
--   profiles  walk public.users: profiles written since, by someone else than
--             reconcile, are compared with their auth user (incremental passes)
--   deleted   (incremental passes) the profiles logged as deleted since
--             (user_sync.deleted_profiles) are inserted again, a batch of the log at a
--             time; when the walks saw as many profiles as auth users, those aside,
--             nothing is left for the merge and the pass ends here, resolving the
--             open errors (or goes on to errors when more are open than a batch compares)
--   recount_auth, recount_profiles
--             (incremental passes whose walks disagreed) both tables counted again in
--             physical order, by id bucket (the first 12 bits of the id): a row that an
--             update moved across a walk while it ran (every sign-in updates auth.users)
--             upsets the counts of its own bucket only
--   ids       merge the ids of both primary keys (a full comparison: every id; an
--             incremental pass: the buckets whose recount disagreed): profiles missing
--             for users the walk did not look at, and orphaned profiles (and, merging
--             every id, the open errors of each id range are resolved)
--   errors    (an incremental pass) the open errors, a batch's comparisons at a time,
--             resolved when their user is now in sync
-- A failing row is isolated and recorded, the rest of its batch goes through; each
-- batch moves user_sync.reconcile_progress forward in the same transaction. A call
-- with p_max_ms stops taking batches once that much time has passed; the next call,
-- from any runner, continues where the last committed one stopped. A call without it
-- finishes the pass. The parts, in the order a call uses them:
--   reconcile_basis          what profiles derive from besides the rows
--   refresh_profile_statistics  statistics of public.users that say it is (nearly) empty
--   reconcile_horizon        rows older than it were in sync when last looked at
--   reconcile_start_pass     a new pass: full or incremental comparison, horizon
--   reconcile_walk_range     the next stretch of a walk in physical order
--   reconcile_rows_counted   which of its rows count towards the pass's tallies
--   reconcile_walk_candidates  its rows and candidates, at most as many as a batch takes
--   reconcile_plan_auth      a stretch of auth.users: missing, candidates
--   reconcile_plan_profiles  a stretch of public.users: candidates
--   reconcile_plan_deleted   the next batch of logged deletions: missing profiles
--   reconcile_bucket_sql     the id bucket of a user, for the recount
--   reconcile_recount        a stretch of a walk counted by id bucket
--   reconcile_plan_ids       the next id range of both keys: missing, orphaned
--   reconcile_drifted        the candidates whose profile has drifted
--   reconcile_cut_writes     a stretch's end when it has more to write than a batch takes
--   reconcile_apply          one set-based step (insert, update, delete) by ids
--   reconcile_apply_isolating  the same, splitting a failing set down to its bad rows
--   reconcile_resolve_errors   open errors of users now in sync are resolved
--   reconcile_forget_deleted   logged deletions a pass has seen to are removed
--   reconcile_remaining      what a pass has left, for reports and status()
--   reconcile_walked_estimate  what the walk of auth.users says the table holds
--
-- Rows written while a pass runs may move to pages it has passed or not yet reached;
-- they are newer than its horizon, so the triggers and the next pass see to them. A
-- rewrite of either table (VACUUM FULL, CLUSTER) changes reconcile_basis(): the pass
-- starts over as a full comparison, so a moved row is examined again, never lost.
-- -----------------------------------------------------------------------------
-- What profiles are derived from besides the rows themselves. A change to any of it
-- (a new field rule, config, a role, a rewritten table, another cluster after a
-- restore) makes the next pass compare every row.
create or replace function user_sync.reconcile_basis() returns text
language plpgsql
stable
set search_path = ''
as $$
declare
  v_cluster text;
begin
  begin
    select c.system_identifier::text into v_cluster from pg_catalog.pg_control_system() c;
  exception when others then
    v_cluster := '';
  end;
  return md5(concat_ws('|', v_cluster,
    pg_relation_filenode('auth.users'::regclass), pg_relation_filenode('public.users'::regclass),
    user_sync.profile_diff_sql(),
    (select string_agg(c::text, ',') from user_sync.config c),
    (select string_agg(ro.role, ',' order by ro.role) from user_sync.roles ro)));
end
$$;
comment on function user_sync.reconcile_basis() is
  'Fingerprint of the field rules, config, roles, table storage and cluster; a pass compares incrementally only under the basis of the last finished pass.';
revoke execute on function user_sync.reconcile_basis() from public, anon, authenticated;

-- The horizon rows older than which were in sync when a pass last looked at them:
-- that of the last real pass that finished without errors under p_basis, or the
-- one the unfinished incremental pass started from; null when there is none or it
-- is too old for 32-bit transaction ids. skip_xids: that pass's own writes, in sync
-- when written. One home for reconcile's choice and status()'s.
create or replace function user_sync.reconcile_horizon(
  p_basis text,
  out since xid8,
  out skip_xids xid[]
)
language plpgsql
stable
set search_path = ''
as $$
declare
  v_pass user_sync.reconcile_progress;
begin
  select * into v_pass from user_sync.reconcile_progress p where not p.dry_run;
  if v_pass.basis = p_basis then
    if v_pass.finished_at is not null and v_pass.errors = 0 then
      since := v_pass.horizon; skip_xids := v_pass.written_xids;
    elsif v_pass.finished_at is null and not v_pass.full_compare then
      since := v_pass.since; skip_xids := v_pass.skip_xids;
    end if;
  end if;
  if pg_current_xact_id()::text::bigint - since::text::bigint > 1000000000 then
    since := null; skip_xids := null;
  end if;
end
$$;
comment on function user_sync.reconcile_horizon(text) is
  'The horizon of the last real reconcile pass without errors under the given basis (rows older were in sync) and the transactions it wrote with; null when a full comparison is needed.';
revoke execute on function user_sync.reconcile_horizon(text) from public, anon, authenticated;

-- The pages a table has now: where a walk of it (or a recount) ends, rows written later
-- being newer than the pass.
create or replace function user_sync.reconcile_table_blocks(p_table regclass) returns bigint
language sql
volatile
set search_path = ''
as $$
  select pg_catalog.pg_relation_size(p_table) / pg_catalog.current_setting('block_size')::integer
$$;
comment on function user_sync.reconcile_table_blocks(regclass) is
  'The pages a table has now (its size over the block size): where a reconcile walk of it ends.';
revoke execute on function user_sync.reconcile_table_blocks(regclass) from public, anon, authenticated;

-- Statistics of public.users that say it holds far fewer profiles than it does (analyzed
-- while empty, or nearly: a new install, a table emptied before a heal, until autovacuum
-- analyzes it again) make the planner read a whole index where a batch looks a few ids
-- up. Each reconcile call checks them: when they say less than a profile a page (a
-- profile takes under 300 bytes of an 8 kB page), it samples the table
-- (user_sync.sampled_rows, a few milliseconds) and analyzes it when it holds ten times more
-- than they say (ANALYZE reads a sample too: about a second at 10M profiles). It waits at
-- most 100 ms for the table's lock (an autovacuum holds it while it runs: then autovacuum
-- sees to the statistics). True when it analyzed.
create or replace function user_sync.refresh_profile_statistics() returns boolean
language plpgsql
set search_path = ''
as $$
declare
  v_estimated numeric;
  v_lock_timeout text := current_setting('lock_timeout');
begin
  select case when c.reltuples >= 0 and c.relpages > 0 and c.reltuples < c.relpages then
           coalesce(user_sync.estimated_rows(c.oid), 0) end
    into v_estimated
  from pg_catalog.pg_class c where c.oid = 'public.users'::regclass;
  -- Never analyzed (the planner estimates from the table's size, which is right), or a
  -- profile a page or more as they should: nothing to do, nothing read.
  if v_estimated is null or coalesce(user_sync.sampled_rows('public.users'), 0) <= 10 * v_estimated + 1000 then
    return false;
  end if;
  perform set_config('lock_timeout', '100ms', true);
  begin
    analyze public.users;
  exception when lock_not_available then
    perform set_config('lock_timeout', v_lock_timeout, true);
    return false;
  end;
  perform set_config('lock_timeout', v_lock_timeout, true);
  return true;
end
$$;
comment on function user_sync.refresh_profile_statistics() is
  'Analyzes public.users when a sample shows ten times more profiles than its statistics say (they were taken while it was empty); true when it did.';
revoke execute on function user_sync.refresh_profile_statistics() from public, anon, authenticated;

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

-- The next stretch of a walk over p_table in physical order: the rows after the tid
-- p_after (null: from the first page) up to the tid upto, within the first p_blocks
-- pages (the table's size when the walk began). About p_rows rows: that many pages
-- at the table's rows per page, fewer when three samples of 8 pages (its start,
-- middle and end) show the stretch holds more than twice as many (a table's density
-- varies: dead space, a bulk import at its end), or exactly p_rows rows when p_exact
-- (tests). last: the stretch ends the walk.
create or replace function user_sync.reconcile_walk_range(
  p_table regclass,
  p_after tid,
  p_rows integer,
  p_exact boolean,
  p_blocks bigint,
  out upto tid,
  out last boolean
)
language plpgsql
stable
set search_path = ''
as $$
declare
  v_per_page double precision;
  v_from bigint := coalesce((p_after::text::point)[0]::bigint, -1);
  v_end bigint;
  v_mid bigint;
  v_rows bigint;
begin
  if coalesce(p_blocks, 0) <= 0 then
    last := true;
    return;
  end if;
  if p_exact then
    execute format('select t.ctid from %s t where t.ctid > $1 and t.ctid < $2 order by t.ctid offset $3 - 1 limit 1', p_table)
      into upto using coalesce(p_after, '(0,0)'::tid), format('(%s,0)', p_blocks)::tid, greatest(p_rows, 1);
    last := upto is null;
    if last then
      upto := format('(%s,65535)', p_blocks - 1)::tid;
    end if;
    return;
  end if;
  select case when c.relpages > 0 and c.reltuples > 0 then c.reltuples / c.relpages end into v_per_page
  from pg_catalog.pg_class c where c.oid = p_table;
  v_end := least(v_from + greatest(ceil(p_rows / coalesce(v_per_page, 50)), 1)::bigint, p_blocks - 1);
  if v_end - v_from > 24 then
    v_mid := v_from + (v_end - v_from) / 2;
    execute format($q$select (select count(*) from %1$s t where t.ctid >= $1 and t.ctid < $2)
                           + (select count(*) from %1$s t where t.ctid >= $3 and t.ctid < $4)
                           + (select count(*) from %1$s t where t.ctid >= $5 and t.ctid < $6)$q$, p_table)
      into v_rows
      using format('(%s,0)', v_from + 1)::tid, format('(%s,0)', v_from + 9)::tid,
            format('(%s,0)', v_mid - 4)::tid, format('(%s,0)', v_mid + 4)::tid,
            format('(%s,0)', v_end - 7)::tid, format('(%s,0)', v_end + 1)::tid;
    -- The rows the stretch holds at the samples' density (v_rows in 24 pages).
    if v_rows / 24.0 * (v_end - v_from) > 2 * greatest(p_rows, 1) then
      v_end := v_from + greatest(floor(24.0 * p_rows / v_rows), 1)::bigint;
    end if;
  end if;
  last := v_end >= p_blocks - 1;
  upto := format('(%s,65535)', v_end)::tid;
end
$$;
comment on function user_sync.reconcile_walk_range(regclass, tid, integer, boolean, bigint) is
  'The next stretch of a reconcile walk in physical order (tids after p_after up to upto) and whether it is the last.';
revoke execute on function user_sync.reconcile_walk_range(regclass, tid, integer, boolean, bigint) from public, anon, authenticated;

-- Which rows of a walk count towards the pass's tally of auth users and profiles (the
-- tallies an incremental pass compares before it leaves out the id merge): those of
-- users created by the time the pass started. A user who signs up while a pass walks
-- gets an auth row and a profile that each walk may or may not meet (the auth walk may
-- have passed where the row went while the profile walk has not), so counting them made
-- the tallies disagree and the pass merge the ids (at 10M users, three sign-ups during
-- the profile walk turned a 10 s pass into 146 s). The next pass takes them: their rows
-- are written since. A row version older than the pass (age of xmin above p_age, the
-- caller's age of the pass's horizon) counts without reading created_at, so a walk
-- still reads no column of its rows but those of its candidates; a newer one counts
-- when created_at (the same on both sides: the field rules copy it; null in auth.users
-- counts as early) is at or before p_created_before, the start of the pass's first
-- transaction. p_age and p_created_before name parameters of the caller's query (a null
-- p_created_before: every row). Dynamic SQL: no catalog dependency on auth.users.
create or replace function user_sync.reconcile_rows_counted(p_age text, p_created_before text) returns text
language sql
immutable
set search_path = ''
as $$
  select format('(%2$s::timestamptz is null or age(t.xmin) > %1$s::bigint or coalesce(t.created_at::timestamptz, ''-infinity'') <= %2$s)',
    p_age, p_created_before)
$$;
comment on function user_sync.reconcile_rows_counted(text, text) is
  'The condition on a walk''s row t (auth.users or public.users) that counts it towards a pass''s tallies: a row version older than the pass, or its user created at or before the pass started (null: every row).';
revoke execute on function user_sync.reconcile_rows_counted(text, text) from public, anon, authenticated;

-- A stretch (p_after, p_upto] of a walk over p_table, read once (a TID Range Scan):
-- its rows and the tids of its candidates (p_candidate, a condition on its row t with
-- $3 = p_age and $4 = p_skip_xids), at most p_max of them. A batch's cost is mostly its
-- candidates' (a lookup, a comparison, often a write, up to ~0.3 ms each), not its
-- rows' (~1 us to read); when the stretch holds more, it ends at the p_max-th in
-- physical order (upto, else p_upto) and its rows are counted to there. Rows count as
-- user_sync.reconcile_rows_counted says, for a pass with p_horizon that started at
-- p_created_before (null: every row): the rows it leaves out are among the candidates
-- (written since), so only those are looked at again.
create or replace function user_sync.reconcile_walk_candidates(
  p_table regclass,
  p_after tid,
  p_upto tid,
  p_candidate text,
  p_age bigint,
  p_skip_xids xid[],
  p_max integer,
  p_horizon xid8,
  p_created_before timestamptz,
  out upto tid,
  out rows bigint,
  out tids tid[]
)
language plpgsql
set search_path = ''
as $$
declare
  -- age(xmin) > v_counted_age  <=>  the row version is older than the pass.
  v_counted_age bigint := pg_current_xact_id()::text::bigint - p_horizon::text::bigint;
  v_uncounted bigint;
begin
  -- Dynamic SQL with the values as constants: a TID Range Scan of the stretch.
  execute format('select count(*), coalesce(array_agg(t.ctid) filter (where %s), ''{}'') from %s t where t.ctid > $1 and t.ctid <= $2',
      p_candidate, p_table)
    into rows, tids using coalesce(p_after, '(0,0)'::tid), p_upto, p_age, coalesce(p_skip_xids, '{}');
  upto := p_upto;
  if cardinality(tids) > p_max then
    select c.tid into upto from unnest(tids) c (tid) order by c.tid offset p_max - 1 limit 1;
    select coalesce(array_agg(c.tid), '{}') into tids from unnest(tids) c (tid) where c.tid <= upto;
    execute format('select count(*) from %s t where t.ctid > $1 and t.ctid <= $2', p_table)
      into rows using coalesce(p_after, '(0,0)'::tid), upto;
  end if;
  -- The candidates not counted (a TID Scan of those few, not a condition on every row).
  if p_created_before is not null and cardinality(tids) > 0 then
    execute format('select count(*) filter (where not %s) from %s t where t.ctid = any($1)',
        user_sync.reconcile_rows_counted('$2', '$3'), p_table)
      into v_uncounted using tids, v_counted_age, p_created_before;
    rows := rows - v_uncounted;
  end if;
end
$$;
comment on function user_sync.reconcile_walk_candidates(regclass, tid, tid, text, bigint, xid[], integer, xid8, timestamptz) is
  'A stretch of a reconcile walk in physical order, cut after at most p_max candidates: where it ends, its rows and its candidates'' tids.';
revoke execute on function user_sync.reconcile_walk_candidates(regclass, tid, tid, text, bigint, xid[], integer, xid8, timestamptz) from public, anon, authenticated;

-- A stretch (p_after, p_upto] of auth.users: how many users, and the candidates the
-- field rules must look at: all of them in a full comparison (p_since null), else
-- those with a row version written since p_since. Candidates are looked up by id in
-- public.users: missing (no profile) or candidates (both sides exist). At most
-- p_max_candidates of them: rows written since cluster where Postgres put their new
-- versions (often the table's end), so a stretch sized by rows may hold thousands;
-- the stretch then ends at the last candidate it takes (upto, else p_upto).
-- The lookups are a TID Scan and index scans by the ids (id = any), no join: statistics
-- that say a table is empty (analyzed before a bulk import, until autovacuum analyzes it
-- again) made the planner scan the whole primary key once per batch, and every profile
-- once per candidate (1.3 s a batch of 2,000 at 300,000 users).
create or replace function user_sync.reconcile_plan_auth(
  p_after tid,
  p_upto tid,
  p_since xid8,
  p_max_candidates integer,
  p_horizon xid8,
  p_created_before timestamptz,
  out upto tid,
  out auth_users bigint,
  out missing uuid[],
  out candidates uuid[]
)
language plpgsql
set search_path = ''
-- Lookups by tid and by primary key only, whatever the statistics say.
set enable_seqscan = off
set enable_nestloop = on
set enable_hashjoin = off
set enable_mergejoin = off
as $$
declare
  -- age(xmin) <= v_age  <=>  the row version was written at or after p_since.
  v_age bigint := pg_current_xact_id()::text::bigint - p_since::text::bigint;
  v_tids tid[];
  v_ids uuid[];
begin
  select * into upto, auth_users, v_tids from user_sync.reconcile_walk_candidates(
    'auth.users', p_after, p_upto, '$3::bigint is null or age(t.xmin) <= $3', v_age, null, p_max_candidates,
    p_horizon, p_created_before);
  -- The candidates' ids by tid (a TID Scan of pages just read). A row moved since (a
  -- concurrent update) is newer than the horizon: the next pass sees it.
  select coalesce(array_agg(c.id order by c.id), '{}') into v_ids
    from (select au.id from auth.users au where au.ctid = any(v_tids) offset 0) c;
  -- Those with a profile (one index scan by the ids), and those without.
  select coalesce(array_agg(c.id order by c.id), '{}') into candidates
    from (select p.id from public.users p where p.id = any(v_ids) offset 0) c;
  select coalesce(array_agg(c.id order by c.id), '{}') into missing
    from (select unnest(v_ids) except all select unnest(candidates)) c (id);
end
$$;
comment on function user_sync.reconcile_plan_auth(tid, tid, xid8, integer, xid8, timestamptz) is
  'A stretch of auth.users in physical order, cut after at most p_max_candidates candidates: where it ends, users in it (those counted: created by the pass''s start), candidates without a profile (missing) and with one (candidates).';
revoke execute on function user_sync.reconcile_plan_auth(tid, tid, xid8, integer, xid8, timestamptz) from public, anon, authenticated;

-- A stretch (p_after, p_upto] of public.users: how many profiles, and the candidates
-- (none in a full comparison, p_since null: the auth walk compared every user):
-- profiles with a row version written since p_since other than by p_skip_xids
-- (reconcile's own writes, in sync when written). A profile whose auth user was
-- written since as well was the auth walk's candidate already. At most
-- p_max_candidates of them, as for the auth walk (upto: where the stretch ends).
create or replace function user_sync.reconcile_plan_profiles(
  p_after tid,
  p_upto tid,
  p_since xid8,
  p_skip_xids xid[],
  p_max_candidates integer,
  p_horizon xid8,
  p_created_before timestamptz,
  out upto tid,
  out profiles bigint,
  out candidates uuid[]
)
language plpgsql
set search_path = ''
-- Lookups by tid and by primary key only, whatever the statistics say.
set enable_seqscan = off
set enable_nestloop = on
set enable_hashjoin = off
set enable_mergejoin = off
as $$
declare
  v_age bigint := pg_current_xact_id()::text::bigint - p_since::text::bigint;
  v_tids tid[];
  v_ids uuid[];
begin
  -- The skip list: a hashed lookup.
  select * into upto, profiles, v_tids from user_sync.reconcile_walk_candidates(
    'public.users', p_after, p_upto, 'age(t.xmin) <= $3 and not t.xmin = any($4)', coalesce(v_age, -1), p_skip_xids,
    p_max_candidates, p_horizon, p_created_before);
  -- The candidates' ids by tid, as for the auth walk, but those whose auth user was
  -- written since as well (the auth walk's candidates already): one index scan by the ids.
  select coalesce(array_agg(c.id order by c.id), '{}') into v_ids
    from (select u.id from public.users u where u.ctid = any(v_tids) offset 0) c;
  select coalesce(array_agg(c.id order by c.id), '{}') into candidates
    from (select unnest(v_ids)
          except all
          select au.id from auth.users au where au.id = any(v_ids) and age(au.xmin) <= v_age) c (id);
end
$$;
comment on function user_sync.reconcile_plan_profiles(tid, tid, xid8, xid[], integer, xid8, timestamptz) is
  'A stretch of public.users in physical order, cut after at most p_max_candidates candidates: where it ends, profiles in it (those counted: of users created by the pass''s start) and the candidates written since the horizon by someone else than reconcile.';
revoke execute on function user_sync.reconcile_plan_profiles(tid, tid, xid8, xid[], integer, xid8, timestamptz) from public, anon, authenticated;

-- The next batch of the deletion log (user_sync.deleted_profiles) in user id order: up
-- to p_max logged users after p_after (upto: the last of them; null when the log has no
-- more), and those of them still missing while their auth user stays, written before
-- p_since (missing; the auth walk took the users written since): what an incremental
-- pass inserts again instead of merging the ids of both tables. Index scans by the ids
-- only (id = any), no join, whatever the caller's planner settings (reconcile forbids
-- nested loops for its batches) or the statistics: a hash join here would read all of
-- public.users to find a handful of ids (seconds at 10M users, and a parallel hash is
-- built even when the log is empty).
create or replace function user_sync.reconcile_plan_deleted(
  p_after uuid,
  p_since xid8,
  p_max integer,
  out upto uuid,
  out missing uuid[]
)
language plpgsql
stable
set search_path = ''
set enable_nestloop = on
set enable_hashjoin = off
set enable_mergejoin = off
as $$
declare
  v_age bigint := pg_current_xact_id()::text::bigint - p_since::text::bigint;
  v_logged uuid[];
begin
  select coalesce(array_agg(l.user_id order by l.user_id), '{}') into v_logged
  from (
    select distinct d.user_id from user_sync.deleted_profiles d
    where p_after is null or d.user_id > p_after
    order by d.user_id
    limit p_max
  ) l;
  upto := case when cardinality(v_logged) = p_max then v_logged[p_max] end;
  select coalesce(array_agg(m.id order by m.id), '{}') into missing
  from (select au.id from auth.users au where au.id = any (v_logged) and not age(au.xmin) <= v_age
        except all
        select u.id from public.users u where u.id = any (v_logged)) m (id);
end
$$;
comment on function user_sync.reconcile_plan_deleted(uuid, xid8, integer) is
  'The next p_max users of the deletion log after p_after (upto: the last, null at the log''s end) and those still missing while their auth user stays, written before p_since.';
revoke execute on function user_sync.reconcile_plan_deleted(uuid, xid8, integer) from public, anon, authenticated;

-- The id bucket of a user (0 to 4095: the first 12 bits of the id, which random UUIDs
-- spread evenly) as an expression over the id expression p_id, for dynamic SQL: the
-- recount reads it for every row, so it is inline (a function with a SET clause is never
-- inlined). user_sync.reconcile_bucket() and reconcile_bucket_last_id() answer for one id
-- and for one bucket.
create or replace function user_sync.reconcile_bucket_sql(p_id text) returns text
language sql
immutable
set search_path = ''
as $$
  select format('(pg_catalog.get_byte(pg_catalog.uuid_send(%1$s), 0) * 16 + pg_catalog.get_byte(pg_catalog.uuid_send(%1$s), 1) / 16)', p_id)
$$;
comment on function user_sync.reconcile_bucket_sql(text) is
  'The id bucket (0 to 4095, the first 12 bits of the id) of the id expression p_id, as SQL text.';
revoke execute on function user_sync.reconcile_bucket_sql(text) from public, anon, authenticated;

-- The id bucket of one id (user_sync.reconcile_bucket_sql).
create or replace function user_sync.reconcile_bucket(p_id uuid) returns integer
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_bucket integer;
begin
  execute format('select %s', user_sync.reconcile_bucket_sql('$1')) into v_bucket using p_id;
  return v_bucket;
end
$$;
comment on function user_sync.reconcile_bucket(uuid) is 'The id bucket (0 to 4095) of an id; null for null.';
revoke execute on function user_sync.reconcile_bucket(uuid) from public, anon, authenticated;

-- The last id of a bucket (its first 12 bits, the rest all ones): the end of its range
-- in id order; the last id of the bucket before is where its range starts after.
create or replace function user_sync.reconcile_bucket_last_id(p_bucket integer) returns uuid
language sql
immutable
set search_path = ''
as $$
  select case when p_bucket between 0 and 4095
    then (pg_catalog.lpad(pg_catalog.to_hex(p_bucket), 3, '0') || 'fffff-ffff-ffff-ffff-ffffffffffff')::uuid end
$$;
comment on function user_sync.reconcile_bucket_last_id(integer) is
  'The greatest id of an id bucket (0 to 4095); null for any other number.';
revoke execute on function user_sync.reconcile_bucket_last_id(integer) from public, anon, authenticated;

-- A stretch (p_after, p_upto] of a walk over p_table, read once (a TID Range Scan) and
-- counted by id bucket: p_sign times each bucket's rows added to p_differences (auth
-- users +1, profiles -1), and the rows counted. Every row counts: a row written during
-- the recount upsets its own bucket's count, which the merge then looks at.
create or replace function user_sync.reconcile_recount(
  p_table regclass,
  p_after tid,
  p_upto tid,
  p_differences integer[],
  p_sign integer,
  out differences integer[],
  out rows bigint
)
language plpgsql
set search_path = ''
as $$
declare
  v_bucket integer;
  v_rows bigint;
begin
  differences := p_differences;
  rows := 0;
  for v_bucket, v_rows in execute format(
      'select %s as bucket, count(*) as n from %s t where t.ctid > $1 and t.ctid <= $2 group by 1',
      user_sync.reconcile_bucket_sql('t.id'), p_table)
    using coalesce(p_after, '(0,0)'::tid), p_upto
  loop
    differences[v_bucket + 1] := differences[v_bucket + 1] + p_sign * v_rows;
    rows := rows + v_rows;
  end loop;
end
$$;
comment on function user_sync.reconcile_recount(regclass, tid, tid, integer[], integer) is
  'Counts a stretch of a walk (tids after p_after up to p_upto) by id bucket into a pass''s recount (p_sign: +1 for auth.users, -1 for public.users); also the rows counted.';
revoke execute on function user_sync.reconcile_recount(regclass, tid, tid, integer[], integer) from public, anon, authenticated;

-- The next id range after p_after (null: from the first id) of both primary keys,
-- about p_rows auth users, paired by id (index-only scans, a merge join; only the
-- unpaired ids leave the join): the missing profiles of users the auth walk did not
-- look at (a full comparison, p_since null, looked at every user; an incremental one
-- at those written since p_since) and the orphaned profiles. Where the range ends
-- (upto, null at the end of the keys): the share p_rows / p_total of the id space when
-- the planner's statistics show ids spread evenly (random UUIDs), else (and when
-- p_exact, tests) the p_rows-th id, which costs a scan of the range's keys; earlier
-- when the range holds more than p_max_candidates missing or orphaned profiles (after
-- a bulk delete of profiles): at the last one a batch takes; at p_until at the latest
-- (null: the end of the keys).
create or replace function user_sync.reconcile_plan_ids(
  p_after uuid,
  p_rows integer,
  p_exact boolean,
  p_total bigint,
  p_since xid8,
  p_max_candidates integer,
  p_until uuid,
  out upto uuid,
  out missing uuid[],
  out orphaned uuid[]
)
language plpgsql
set search_path = ''
-- Both sides come in id order from their primary keys: a merge join reads them once
-- without building a hash table.
set enable_mergejoin = on
set enable_hashjoin = off
set enable_nestloop = off
as $$
declare
  v_age bigint := pg_current_xact_id()::text::bigint - p_since::text::bigint;
  v_after text := case when p_after is null then 'true' else '%I.id > $1' end;
  v_missing uuid[];
  v_bounds uuid[];
  v_even boolean := false;
  v_end bigint;
begin
  if not p_exact and p_total > 0 then
    select s.histogram_bounds::text::uuid[] into v_bounds
    from pg_catalog.pg_stats s where s.schemaname = 'auth' and s.tablename = 'users' and s.attname = 'id';
    -- Evenly spread: each bound within 5% of the id space of where it would be.
    select coalesce(max(abs(('x' || left(b.id::text, 8))::bit(32)::bigint / 4294967296.0
                            - (b.n - 1)::numeric / (cardinality(v_bounds) - 1))) < 0.05, false)
      into v_even
      from unnest(v_bounds) with ordinality b (id, n)
      where cardinality(v_bounds) >= 10;
  end if;
  if not v_even then
    execute format('select au.id from auth.users au where %s order by au.id offset $2 - 1 limit 1',
        format(v_after, 'au'))
      into upto using p_after, greatest(p_rows, 1);
  else
    -- The first 32 bits of the id: where the range ends, the rest all ones.
    v_end := coalesce(('x' || left(p_after::text, 8))::bit(32)::bigint, -1)
      + greatest(ceil(4294967296.0 * p_rows / p_total), 1)::bigint;
    upto := case when v_end < 4294967295 then (lpad(to_hex(v_end), 8, '0') || '-ffff-ffff-ffff-ffffffffffff')::uuid end;
  end if;
  if p_until is not null and (upto is null or upto > p_until) then
    upto := p_until;
  end if;
  -- Dynamic SQL with the values as constants: each call is planned for its own range.
  execute format($q$
    select coalesce(array_agg(a.id) filter (where p.id is null), '{}'),
           coalesce(array_agg(p.id) filter (where a.id is null), '{}')
    from (select au.id from auth.users au where %s and ($2::uuid is null or au.id <= $2)) a
    full join (select u.id from public.users u where %s and ($2::uuid is null or u.id <= $2)) p
      on p.id = a.id
    where a.id is null or p.id is null$q$, format(v_after, 'au'), format(v_after, 'u'))
    into v_missing, orphaned
    using p_after, upto;
  if cardinality(v_missing) > p_max_candidates or cardinality(orphaned) > p_max_candidates then
    upto := least(
      (select m.id from unnest(v_missing) m (id) order by m.id offset p_max_candidates - 1 limit 1),
      (select o.id from unnest(orphaned) o (id) order by o.id offset p_max_candidates - 1 limit 1));
    v_missing := array(select m.id from unnest(v_missing) m (id) where m.id <= upto);
    orphaned := array(select o.id from unnest(orphaned) o (id) where o.id <= upto);
  end if;
  select coalesce(array_agg(au.id), '{}') into missing
    from auth.users au
    where p_since is not null and au.id = any(v_missing)
      and not age(au.xmin) <= v_age;
end
$$;
comment on function user_sync.reconcile_plan_ids(uuid, integer, boolean, bigint, xid8, integer, uuid) is
  'The next id range of both primary keys after an id and up to p_until at most, with at most p_max_candidates missing and orphaned profiles each: missing profiles the auth walk did not look at, orphaned profiles, the range''s last id (null at the end).';
revoke execute on function user_sync.reconcile_plan_ids(uuid, integer, boolean, bigint, xid8, integer, uuid) from public, anon, authenticated;

-- The users among p_ids whose profile has drifted from what the field rules derive
-- (a comparison, no write): what a walk's candidates need written.
create or replace function user_sync.reconcile_drifted(p_ids uuid[]) returns uuid[]
language plpgsql
stable
set search_path = ''
as $$
declare
  v_drifted uuid[];
begin
  if coalesce(cardinality(p_ids), 0) = 0 then
    return '{}'::uuid[];
  end if;
  execute format($q$
    select coalesce(array_agg(x.id), '{}') from (%s) x
    where x.id = any($1) and x.profile_id = any($1) and x.drifted$q$, user_sync.profile_diff_sql())
    into v_drifted using p_ids;
  return v_drifted;
end
$$;
comment on function user_sync.reconcile_drifted(uuid[]) is
  'The given users whose profile differs from what the field rules derive from their auth user.';
revoke execute on function user_sync.reconcile_drifted(uuid[]) from public, anon, authenticated;

-- Where a walk's stretch (p_after, p_upto] of p_table, p_rows rows, ends when its batch
-- has more profiles to write (p_missing to insert, p_drifted to update) than p_max: at
-- the p_max-th of their rows in physical order, the writes and rows counted to there. A
-- write costs up to ~0.3 ms (the profile's indexes, its foreign keys), a comparison a
-- few us: a batch's comparisons are bounded by its candidates, its writes by this cut.
-- A row moved since it was read (a concurrent update) is newer than the pass's horizon:
-- kept, and seen again by the next pass.
create or replace function user_sync.reconcile_cut_writes(
  p_table regclass,
  p_after tid,
  p_upto tid,
  p_rows bigint,
  p_missing uuid[],
  p_drifted uuid[],
  p_max integer,
  p_horizon xid8,
  p_created_before timestamptz,
  out upto tid,
  out rows bigint,
  out missing uuid[],
  out drifted uuid[]
)
language plpgsql
set search_path = ''
as $$
declare
  v_tids tid[];
begin
  upto := p_upto;
  rows := p_rows;
  missing := coalesce(p_missing, '{}');
  drifted := coalesce(p_drifted, '{}');
  if cardinality(missing) + cardinality(drifted) <= p_max then
    return;
  end if;
  execute format('select array_agg(t.ctid order by t.ctid) from %s t where t.id = any($1) and t.ctid > $2 and t.ctid <= $3', p_table)
    into v_tids using missing || drifted, coalesce(p_after, '(0,0)'::tid), p_upto;
  if coalesce(cardinality(v_tids), 0) <= p_max then
    return;
  end if;
  upto := v_tids[p_max];
  execute format($q$select coalesce(array_agg(t.id) filter (where t.id = any($3)), '{}'),
                           coalesce(array_agg(t.id) filter (where t.id = any($4)), '{}')
                    from %s t where t.ctid = any($1) and t.ctid <= $2$q$, p_table)
    into missing, drifted using v_tids, upto, missing, drifted;
  execute format('select count(*) filter (where %s) from %s t where t.ctid > $1 and t.ctid <= $2',
      user_sync.reconcile_rows_counted('$3', '$4'), p_table)
    into rows using coalesce(p_after, '(0,0)'::tid), upto,
      pg_current_xact_id()::text::bigint - p_horizon::text::bigint, p_created_before;
end
$$;
comment on function user_sync.reconcile_cut_writes(regclass, tid, tid, bigint, uuid[], uuid[], integer, xid8, timestamptz) is
  'A reconcile walk''s stretch cut after at most p_max profiles to write: where it ends, its rows (those counted), the missing and drifted profiles it keeps.';
revoke execute on function user_sync.reconcile_cut_writes(regclass, tid, tid, bigint, uuid[], uuid[], integer, xid8, timestamptz) from public, anon, authenticated;

-- One set-based step for the given users, each re-read by id (their state may have
-- moved since the batch was planned):
--   * 'insert' missing profiles (one the trigger inserted meanwhile wins). Each auth row
--     is key-share locked as it is read (the lock the foreign key's check takes anyway),
--     skipping a row Auth is deleting or changing a key (email, phone) of: that user is
--     left to Auth's trigger and the next pass (waiting for Auth there, while Auth's
--     trigger waits for the profile just inserted, would be a deadlock). A row deleted
--     since the statement's snapshot is skipped too, not a 23503;
--   * 'update' drifted ones (a row changed since it was read, xmin moved, is left to
--     the writer that changed it);
--   * 'delete' orphans.
-- With p_after/p_upto, the users are in that stretch of auth.users (a walk's): 'insert'
-- re-reads them by tid range, not one by one. Raises on any failing row; the caller
-- isolates it. Answers how many rows it wrote and the transaction that wrote them.
create or replace function user_sync.reconcile_apply(
  p_step text,
  p_ids uuid[],
  p_sync_ts timestamptz,
  p_after tid,
  p_upto tid,
  out rows bigint,
  out writer xid
)
language plpgsql
set search_path = ''
as $$
begin
  -- The ids are a set spread over the id space (a walk's, or the missing of an id
  -- range): looked up one by one (a bitmap of the key's entries), or, within a
  -- walk's stretch, a hashed filter on its TID Range Scan.
  case p_step
  when 'insert' then
    execute format($q$
      with done as (
        insert into public.users (%s, updated_at, synced_at)
        select %s, now(), $1
        from (%s) d
        on conflict (id) do nothing
        returning xmin
      )
      select count(*), min(done.xmin::text)::xid from done$q$,
        user_sync.profile_columns_sql(null), user_sync.profile_columns_sql('d'),
        user_sync.expected_profiles_sql()
          || ' where au.id = any($2)'
          || case when p_upto is not null then ' and au.ctid > $3 and au.ctid <= $4' else '' end
          || ' for key share of au skip locked')
      into rows, writer using p_sync_ts, p_ids, coalesce(p_after, '(0,0)'::tid), p_upto;
  when 'update' then
    execute format($q$
      with todo as materialized (
        select x.* from (%s) x
        where x.id = any($1) and x.profile_id = any($1) and x.drifted
      ), done as (
        update public.users u set %s, updated_at = now(), synced_at = $2
        from todo t
        where u.id = any($1) and u.id = t.id and u.xmin = t.profile_xmin
        returning u.xmin
      )
      select count(*), min(done.xmin::text)::xid from done$q$,
        user_sync.profile_diff_sql(), user_sync.profile_update_sql('t'))
      into rows, writer using p_ids, p_sync_ts;
  when 'delete' then
    -- Both sides filtered by the ids: under reconcile's planner settings (nested loops
    -- off) the anti join is a hash join, which would otherwise hash all of auth.users.
    with done as (
      delete from public.users u
      where u.id = any(p_ids)
        and not exists (select 1 from auth.users au where au.id = any(p_ids) and au.id = u.id)
      returning 1
    )
    select count(*) into rows from done;
  else
    raise exception using errcode = '22023', message = format('user_sync.reconcile_apply: unknown step %L', p_step);
  end case;
end
$$;
comment on function user_sync.reconcile_apply(text, uuid[], timestamptz, tid, tid) is
  'One set-based reconcile step (insert, update, delete) for the given users; raises when any row fails.';
revoke execute on function user_sync.reconcile_apply(text, uuid[], timestamptz, tid, tid) from public, anon, authenticated;

-- reconcile_apply, isolating failures: the set is tried whole (one statement, the
-- usual case). When a row's data fails it, the failing user is recorded in
-- user_sync.errors and the set is tried again without that user: Postgres names it
-- (a foreign key on id the app added: 23503 "Key (id)=(...)"; a check or
-- not-null constraint: "Failing row contains (id, ..."). When it is not named (e.g. a
-- unique index the app added), the set is split in halves down to the failing rows:
-- k bad rows among n cost about 2k log2(n) small statements. The batch goes on.
create or replace function user_sync.reconcile_apply_isolating(
  p_step text,
  p_ids uuid[],
  p_sync_ts timestamptz,
  p_after tid,
  p_upto tid,
  p_run_id bigint,
  out rows bigint,
  out failed integer,
  out writers xid[]
)
language plpgsql
set search_path = ''
as $$
declare
  v_ids uuid[] := coalesce(p_ids, '{}');
  v_n integer;
  v_state text;
  v_message text;
  v_detail text;
  v_failing uuid;
  v_left record;
  v_right record;
begin
  rows := 0; failed := 0; writers := '{}';
  loop
    v_n := cardinality(v_ids);
    if v_n = 0 then
      return;
    end if;
    begin
      select a.rows, a.writer into v_left from user_sync.reconcile_apply(p_step, v_ids, p_sync_ts, p_after, p_upto) a;
      rows := rows + v_left.rows;
      if v_left.writer is not null then
        writers := writers || v_left.writer;
      end if;
      return;
    exception when others then
      get stacked diagnostics v_state = returned_sqlstate, v_message = message_text, v_detail = pg_exception_detail;
      -- Only a row's data can fail for one row and not another (integrity constraint,
      -- data exception, an app trigger's raise); anything else fails the call.
      if left(v_state, 2) not in ('22', '23', '44', 'P0') then
        raise;
      end if;
    end;
    v_failing := case
      when v_n = 1 then v_ids[1]
      else (select m[1]::uuid from regexp_match(coalesce(v_detail, ''),
              '^(?:Key \(id\)=\(|Failing row contains \()([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})') m)
    end;
    exit when v_failing is null or not v_failing = any(v_ids);
    perform user_sync.record_error(v_failing, 'reconcile', v_state, v_message,
      concat_ws('; ', 'step: ' || p_step, v_detail), p_run_id);
    failed := failed + 1;
    v_ids := array_remove(v_ids, v_failing);
  end loop;
  -- The failing row is not named: halves.
  select * into v_left from user_sync.reconcile_apply_isolating(p_step, v_ids[1:v_n / 2], p_sync_ts, p_after, p_upto, p_run_id);
  select * into v_right from user_sync.reconcile_apply_isolating(p_step, v_ids[v_n / 2 + 1:v_n], p_sync_ts, p_after, p_upto, p_run_id);
  rows := rows + v_left.rows + v_right.rows;
  failed := failed + v_left.failed + v_right.failed;
  writers := writers || v_left.writers || v_right.writers;
end
$$;
comment on function user_sync.reconcile_apply_isolating(text, uuid[], timestamptz, tid, tid, bigint) is
  'reconcile_apply for a set of users; each user whose row fails is recorded in user_sync.errors and the rest is applied.';
revoke execute on function user_sync.reconcile_apply_isolating(text, uuid[], timestamptz, tid, tid, bigint) from public, anon, authenticated;

-- Open errors of users in the id range (p_after, p_upto] (other than this call's)
-- are resolved when the user is now in sync or gone; with p_upto null, to the end,
-- and errors without a user too. The users are looked up by primary key on both sides
-- and compared as sets (no join of the errors with the rules), so the cost follows the
-- open errors, not the tables, under any planner settings: a hash of the rules' full
-- join read all of public.users (seconds at 10M users), and a nested loop of the
-- errors over it grew with the square of the open errors.
create or replace function user_sync.reconcile_resolve_errors(
  p_after uuid,
  p_upto uuid,
  p_run_id bigint
) returns void
language plpgsql
set search_path = ''
as $$
declare
  v_open uuid[];
  v_in_sync uuid[];
begin
  select coalesce(array_agg(distinct e.user_id), '{}')
    into v_open
    from user_sync.errors e
    where e.resolved_at is null and e.run_id is distinct from p_run_id
      and e.user_id is not null
      and (p_after is null or e.user_id > p_after) and (p_upto is null or e.user_id <= p_upto);
  if cardinality(v_open) > 0 then
    -- In sync or gone: neither drifted nor an auth user without a profile.
    v_in_sync := array(
      select o.id from unnest(v_open) o (id)
      except select d.id from unnest(user_sync.reconcile_drifted(v_open)) d (id)
      except (select au.id from auth.users au where au.id = any (v_open)
              except select p.id from public.users p where p.id = any (v_open)));
    update user_sync.errors e set resolved_at = now()
    where e.resolved_at is null and e.run_id is distinct from p_run_id
      and e.user_id = any (v_in_sync);
  end if;
  if p_upto is null then
    update user_sync.errors e set resolved_at = now()
    where e.resolved_at is null and e.run_id is distinct from p_run_id
      and e.user_id is null;
  end if;
end
$$;
comment on function user_sync.reconcile_resolve_errors(uuid, uuid, bigint) is
  'Resolves the open errors of users in an id range that are now in sync or gone.';
revoke execute on function user_sync.reconcile_resolve_errors(uuid, uuid, bigint) from public, anon, authenticated;

-- The logged deletions of the id range (p_after, p_upto] that a pass has seen to: those
-- older than its horizon (a newer one is the next pass's). The deleted phase takes the
-- log a batch at a time, the id merge a range at a time; both forget what they took here.
create or replace function user_sync.reconcile_forget_deleted(p_after uuid, p_upto uuid, p_horizon xid8) returns void
language sql
set search_path = ''
as $$
  delete from user_sync.deleted_profiles d
  where (p_after is null or d.user_id > p_after)
    and (p_upto is null or d.user_id <= p_upto)
    and d.deleted_xid < p_horizon;
$$;
comment on function user_sync.reconcile_forget_deleted(uuid, uuid, xid8) is
  'Removes the entries of user_sync.deleted_profiles in an id range that a reconcile pass with the given horizon has seen to.';
revoke execute on function user_sync.reconcile_forget_deleted(uuid, uuid, xid8) from public, anon, authenticated;

-- How many auth users the walk of auth.users says the table holds: the users it counted
-- so far per page walked, times the pages it walks. Null outside that walk.
create or replace function user_sync.reconcile_walked_estimate(p_pass user_sync.reconcile_progress) returns bigint
language sql
immutable
set search_path = ''
as $$
  select case when p_pass.phase = 'auth' and p_pass.walk_after is not null and p_pass.walk_blocks > 0 then
    round(p_pass.examined::numeric * p_pass.walk_blocks / ((p_pass.walk_after::text::point)[0] + 1))::bigint
  end
$$;
comment on function user_sync.reconcile_walked_estimate(user_sync.reconcile_progress) is
  'The auth users the walk of auth.users has read so far, scaled from the pages walked to all it walks; null outside that walk.';
revoke execute on function user_sync.reconcile_walked_estimate(user_sync.reconcile_progress) from public, anon, authenticated;

-- What a pass has left, in users (an estimate): the auth users its walk has not
-- reached, then the rows the profile walk or a recount has not (pages left at the
-- table's rows per page), the entries of the deletion log an incremental pass has not,
-- or the open errors (up to a million counted), then the share of the id space (or of
-- the buckets to merge) the id merge has not. 0 once the pass finished; null when the
-- table size is unknown.
create or replace function user_sync.reconcile_remaining(p_pass user_sync.reconcile_progress) returns bigint
language sql
stable
set search_path = ''
as $$
  select case
    when p_pass.finished_at is not null then 0
    when p_pass.phase = 'auth' then greatest(p_pass.total - p_pass.examined, 0)
    when p_pass.phase = 'deleted' then (
      select count(*) from (
        select 1 from user_sync.deleted_profiles d
        where p_pass.last_id is null or d.user_id > p_pass.last_id
        limit 1000000) x)
    when p_pass.phase = 'errors' then (
      select count(*) from (
        select 1 from user_sync.errors e
        where e.resolved_at is null and (p_pass.last_id is null or e.user_id > p_pass.last_id)
        limit 1000000) x)
    when p_pass.phase in ('profiles', 'recount_auth', 'recount_profiles') then (
      select greatest(p_pass.walk_blocks - 1 - coalesce((p_pass.walk_after::text::point)[0]::bigint, -1), 0)
             * coalesce(c.reltuples / nullif(c.relpages, 0), 50)::bigint
      from pg_catalog.pg_class c
      where c.oid = case when p_pass.phase = 'recount_auth' then 'auth.users' else 'public.users' end::regclass)
    when p_pass.merge_buckets is not null then (
      select round(count(*) * p_pass.total / 4096.0)::bigint
      from unnest(p_pass.merge_buckets) b
      cross join (select user_sync.reconcile_bucket(p_pass.last_id) as b) cur
      where p_pass.last_id is null or b.b > cur.b
         or (b.b = cur.b and p_pass.last_id < user_sync.reconcile_bucket_last_id(b.b)))
    else round(p_pass.total * (1 - coalesce(
      ('x' || left(replace(p_pass.last_id::text, '-', ''), 8))::bit(32)::bigint / 4294967296.0, 0)))::bigint
  end
$$;
comment on function user_sync.reconcile_remaining(user_sync.reconcile_progress) is
  'Users a reconcile pass has left to examine (an estimate; 0 once it finished).';
revoke execute on function user_sync.reconcile_remaining(user_sync.reconcile_progress) from public, anon, authenticated;

-- The entry point. Overlapping calls: the second returns {"skipped": true} at once.
-- A dry run changes no profile and reports what it would do (a pass of its own).
-- The report is this call's work (inserted, updated, deleted, errors), where the
-- pass stands (complete, examined, total, remaining) and, once the pass is complete,
-- the table sizes it saw (auth_users, profiles; null while it is not). Each batch is
-- planned by its phase (what to insert, update, delete), written by one step common to
-- all phases, then counted by its phase (tallies, position, the next phase).
create or replace function user_sync.reconcile(
  p_dry_run boolean default false,
  p_source text default 'manual',
  p_max_ms integer default null
) returns jsonb
language plpgsql
security definer
set search_path = ''
-- Batches must not turn into nested loops when statistics are stale (a bulk import
-- not yet analyzed): hash joins read each side once. (The planning parts set their own.)
set enable_nestloop = off
set enable_mergejoin = off
-- JIT compiling the field rules costs more than it saves here.
set jit = off
as $$
declare
  v_started timestamptz := clock_timestamp();
  v_run_id bigint;
  v_pass user_sync.reconcile_progress;
  v_basis text;
  v_range record;
  v_plan record;
  v_step record;
  v_done record;
  v_batch_started timestamptz;
  v_batch_ms numeric;
  v_since xid8;
  v_counted_before timestamptz;
  v_complete boolean := false;
  -- A batch should take about this long: a bounded call overruns its budget by at
  -- most one batch, and holds the rows it wrote for at most budget + one batch.
  v_target_ms constant numeric := case when p_max_ms is null then 1000 else least(greatest(p_max_ms / 4.0, 50), 400) end;
  -- Tests and benchmarks may fix the batch size.
  v_fixed_rows constant integer := nullif(current_setting('user_sync.reconcile_batch_rows', true), '')::integer;
  -- At most this many profiles a batch writes (up to ~0.3 ms each at 10M users: the
  -- profile's indexes and foreign keys), and eight times as many users it looks up and
  -- compares (up to ~25 us each; reading a row costs ~1 us), so that a batch stays under
  -- ~1 s whatever it meets: the rows written since the last pass sit where their new
  -- versions went (a bulk update's at the end of the table), so a stretch sized by the
  -- rows before it may hold thousands of either. Tests may set it lower.
  v_max_writes constant integer := greatest(coalesce(
    nullif(current_setting('user_sync.reconcile_batch_writes', true), '')::integer,
    least(greatest(round(v_target_ms * 8), 400), 2000)::integer), 1);
  v_max_candidates constant integer := 8 * v_max_writes;
  v_walked_table regclass;
  v_walked_to tid;
  v_cut_short boolean;
  v_cut record;
  v_sync_ts timestamptz;
  v_inserted bigint := 0;
  v_updated bigint := 0;
  v_deleted bigint := 0;
  v_errors integer := 0;
  v_examined bigint := 0;
  -- A batch: what it writes (planned by its phase), the tid range of the auth walk's
  -- users, and what it wrote.
  v_missing uuid[];
  v_drifted uuid[];
  v_orphaned uuid[];
  v_apply_after tid;
  v_apply_upto tid;
  v_batch_inserted bigint;
  v_batch_updated bigint;
  v_batch_deleted bigint;
  v_own bigint;
  -- The id merge's range (v_after, v_until] and bucket (merging only some buckets).
  v_after uuid;
  v_until uuid;
  v_bucket integer;
  v_recount record;
  -- An incremental pass has nothing left to merge: it ends by resolving open errors.
  v_end_incremental boolean;
  v_errors_upto uuid;
  v_rows bigint;
  v_state text;
  v_message text;
  v_status text;
begin
  if p_dry_run is null then
    raise exception using errcode = '22004', message = 'user_sync.reconcile: p_dry_run must not be null';
  end if;
  if p_source is null or p_source !~ '^[a-z][a-z0-9_-]{0,39}$' then
    raise exception using errcode = '22023',
      message = format('user_sync.reconcile: invalid p_source %L', p_source),
      hint = 'Use lower-case letters, digits, - and _ (at most 40), e.g. cron, manual, api.';
  end if;
  if p_max_ms < 0 then
    raise exception using errcode = '22023',
      message = format('user_sync.reconcile: p_max_ms must not be negative, got %s', p_max_ms);
  end if;

  -- One reconcile at a time, cluster-wide; held until the transaction ends.
  if not pg_try_advisory_xact_lock(hashtextextended('user_sync.reconcile', 0)) then
    insert into user_sync.runs (source, dry_run, status, finished_at, duration_ms)
    values (p_source, p_dry_run, 'skipped', clock_timestamp(), 0)
    returning id into v_run_id;
    return jsonb_build_object(
      'skipped', true, 'run_id', v_run_id, 'source', p_source, 'dry_run', p_dry_run,
      'complete', false, 'remaining', null,
      'reason', 'another reconcile is in progress');
  end if;

  insert into user_sync.runs (source, dry_run) values (p_source, p_dry_run) returning id into v_run_id;

  begin
    -- Both tables keep their storage (and so their tids) until this call ends: a
    -- rewrite (VACUUM FULL) waits for it, or has finished and changed the basis.
    lock table auth.users, public.users in access share mode;
    -- Statistics that would make a batch's lookups read whole indexes are refreshed.
    perform user_sync.refresh_profile_statistics();
    -- The pass in progress, or a new one (none yet, the last one finished, or the
    -- rules, settings or table storage changed under it).
    v_basis := user_sync.reconcile_basis();
    select * into v_pass from user_sync.reconcile_progress p where p.dry_run = p_dry_run for update;
    if v_pass.dry_run is null or v_pass.finished_at is not null or v_pass.basis is distinct from v_basis then
      v_pass := user_sync.reconcile_start_pass(p_dry_run, v_run_id, v_basis, coalesce(v_fixed_rows, 1000));
    end if;
    v_since := case when not v_pass.full_compare then v_pass.since end;
    -- The walks' tallies leave out users created since the pass started; a full
    -- comparison merges the ids whatever they say, and counts every row.
    v_counted_before := case when not v_pass.full_compare then v_pass.started_at end;

    loop
      v_batch_started := clock_timestamp();
      v_sync_ts := clock_timestamp();
      v_rows := null;
      v_cut_short := false;
      v_missing := '{}';
      v_drifted := '{}';
      v_orphaned := '{}';
      v_apply_after := null;
      v_apply_upto := null;
      v_end_incremental := false;

      -- The walks and the recount read a table in physical order: the batch's stretch.
      if v_pass.phase in ('auth', 'profiles', 'recount_auth', 'recount_profiles') then
        v_walked_table := case when v_pass.phase in ('auth', 'recount_auth') then 'auth.users' else 'public.users' end::regclass;
        select * into v_range from user_sync.reconcile_walk_range(
          v_walked_table,
          v_pass.walk_after, coalesce(v_fixed_rows, v_pass.batch_rows), v_fixed_rows is not null, v_pass.walk_blocks);
      end if;

      -- 1. The batch's plan, by phase: the profiles to insert, update and delete.
      if v_pass.phase in ('auth', 'profiles') then
        v_walked_to := v_range.upto;
        if v_range.upto is not null then
          -- Its candidates: the auth walk's users without a profile (missing) and with
          -- one; the profile walk's profiles written since by someone else than reconcile.
          if v_pass.phase = 'auth' then
            select p.upto, p.auth_users as rows, p.missing, p.candidates into v_plan
            from user_sync.reconcile_plan_auth(v_pass.walk_after, v_range.upto, v_since, v_max_candidates, v_pass.horizon,
              v_counted_before) p;
          else
            select p.upto, p.profiles as rows, '{}'::uuid[] as missing, p.candidates into v_plan
            from user_sync.reconcile_plan_profiles(
              v_pass.walk_after, v_range.upto, v_since, v_pass.skip_xids || v_pass.written_xids, v_max_candidates,
              v_pass.horizon, v_counted_before) p;
          end if;
          -- Its writes: the missing profiles and the drifted ones, at most v_max_writes.
          select * into v_cut from user_sync.reconcile_cut_writes(
            v_walked_table, v_pass.walk_after, v_plan.upto, v_plan.rows, v_plan.missing,
            user_sync.reconcile_drifted(v_plan.candidates), v_max_writes, v_pass.horizon, v_counted_before);
          v_walked_to := v_cut.upto;
          v_rows := v_cut.rows;
          v_missing := v_cut.missing;
          v_drifted := v_cut.drifted;
          if v_pass.phase = 'auth' then
            -- The auth walk's users are in its stretch of auth.users: re-read by tid range.
            v_apply_after := v_pass.walk_after;
            v_apply_upto := v_walked_to;
          end if;
          -- The profile walk counts each profile once, so that the walks' counts agree in a
          -- database nobody else writes to: not the rows this pass wrote (the auth walk's
          -- writes are counted by it; a profile this walk updates was counted as it read it,
          -- and its new version may land ahead of the walk).
          v_own := 0;
          if v_pass.phase = 'profiles' and cardinality(v_pass.written_xids) > 0 then
            execute 'select count(*) from public.users t where t.ctid > $1 and t.ctid <= $2 and t.xmin = any($3)'
              into v_own using coalesce(v_pass.walk_after, '(0,0)'::tid), v_walked_to, v_pass.written_xids;
          end if;
        end if;
      elsif v_pass.phase = 'deleted' then
        -- The logged deletions, a batch at a time (at most a batch's writes): the
        -- profiles still missing are inserted again.
        select * into v_plan from user_sync.reconcile_plan_deleted(v_pass.last_id, v_since, v_max_writes);
        v_missing := v_plan.missing;
      elsif v_pass.phase in ('recount_auth', 'recount_profiles') then
        -- The stretch counted by id bucket (no writes).
        if v_range.upto is not null then
          select * into v_recount from user_sync.reconcile_recount(
            v_walked_table, v_pass.walk_after, v_range.upto, v_pass.bucket_differences,
            case when v_pass.phase = 'recount_auth' then 1 else -1 end);
          v_pass.bucket_differences := v_recount.differences;
          v_rows := v_recount.rows;
        end if;
      elsif v_pass.phase = 'ids' then
        -- The next id range of both keys: missing profiles the walk did not look at,
        -- orphans. Every id, or the buckets to merge: within the bucket of the last id,
        -- else from the start of the next one.
        v_after := v_pass.last_id;
        v_until := null;
        if v_pass.merge_buckets is not null then
          v_bucket := user_sync.reconcile_bucket(v_pass.last_id);
          if v_pass.last_id is null or v_pass.last_id = user_sync.reconcile_bucket_last_id(v_bucket) then
            v_bucket := (select min(b) from unnest(v_pass.merge_buckets) b where b > coalesce(v_bucket, -1));
            v_after := user_sync.reconcile_bucket_last_id(v_bucket - 1);
          end if;
          v_until := user_sync.reconcile_bucket_last_id(v_bucket);
        end if;
        select * into v_plan from user_sync.reconcile_plan_ids(
          v_after, coalesce(v_fixed_rows, v_pass.batch_rows), v_fixed_rows is not null, v_pass.total, v_since,
          v_max_writes, v_until);
        v_missing := v_plan.missing;
        v_orphaned := v_plan.orphaned;
        if p_dry_run and not v_pass.full_compare then
          -- A dry incremental pass counted the logged deletions already (phase deleted),
          -- and left them in the log and their profiles missing.
          v_missing := array(
            select m.id from unnest(v_plan.missing) m (id)
            where not m.id = any (array(select d.user_id from user_sync.deleted_profiles d
                                        where d.user_id = any (v_plan.missing))));
        end if;
      end if;

      -- 2. Its writes, in one place for every phase (a dry run counts them): each step
      -- set-based, a failing row isolated and recorded.
      v_batch_inserted := 0;
      v_batch_updated := 0;
      v_batch_deleted := 0;
      if p_dry_run then
        v_inserted := v_inserted + cardinality(v_missing);
        v_updated := v_updated + cardinality(v_drifted);
        v_deleted := v_deleted + cardinality(v_orphaned);
      else
        for v_step in
          select s.step, s.ids
          from (values (1, 'insert', v_missing), (2, 'update', v_drifted), (3, 'delete', v_orphaned)) s (n, step, ids)
          where cardinality(s.ids) > 0
          order by s.n
        loop
          select * into v_done from user_sync.reconcile_apply_isolating(
            v_step.step, v_step.ids, v_sync_ts, v_apply_after, v_apply_upto, v_run_id);
          case v_step.step
            when 'insert' then v_batch_inserted := v_done.rows;
            when 'update' then v_batch_updated := v_done.rows;
            else v_batch_deleted := v_done.rows;
          end case;
          v_errors := v_errors + v_done.failed;
          v_pass.errors := v_pass.errors + v_done.failed;
          v_pass.written_xids := v_pass.written_xids || v_done.writers;
        end loop;
        v_inserted := v_inserted + v_batch_inserted;
        v_updated := v_updated + v_batch_updated;
        v_deleted := v_deleted + v_batch_deleted;
      end if;

      -- 3. The pass's tallies and position, by phase.
      if v_pass.phase in ('auth', 'profiles') then
        if v_range.upto is not null then
          if v_pass.phase = 'auth' then
            v_examined := v_examined + v_rows;
            v_pass.examined := v_pass.examined + v_rows;
            v_pass.auth_users := v_pass.auth_users + v_rows;
            -- Profiles: the users' (those still missing aside), after this batch's inserts.
            v_pass.profiles := v_pass.profiles + v_rows - cardinality(v_missing) + v_batch_inserted;
            -- The profiles this batch inserted or updated: the profile walk leaves them out.
            v_pass.walked_profiles := v_pass.walked_profiles + v_batch_inserted + v_batch_updated;
          else
            v_pass.walked_profiles := v_pass.walked_profiles + v_rows - v_own;
          end if;
        end if;
        -- The stretch ends early when it held more candidates or writes than a batch takes.
        v_cut_short := v_walked_to is distinct from v_range.upto;
        v_pass.walk_after := v_walked_to;
        if v_range.last and v_walked_to is not distinct from v_range.upto then
          -- The walk is done: the profile walk next, then the ids. A row costs another
          -- amount there (after a drift, up to ~0.2 ms an id where the merge meets heap
          -- pages its writes took out of the visibility map): the batch size starts low,
          -- so that the first batch stays well inside a call's 1.5 s of overrun, and
          -- adapts again (doubling at most per batch).
          v_pass.walk_after := null;
          v_pass.batch_rows := least(v_pass.batch_rows, 2000);
          if v_pass.phase = 'auth' then
            v_pass.phase := 'profiles';
            v_pass.walk_blocks := user_sync.reconcile_table_blocks('public.users');
          else
            -- A full comparison merges the ids; an incremental pass first looks at the
            -- profiles logged as deleted, and merges only when the walks disagree.
            v_pass.phase := case when v_pass.full_compare then 'ids' else 'deleted' end;
            v_pass.walk_blocks := null;
            v_pass.last_id := null;
          end if;
        end if;
      elsif v_pass.phase = 'deleted' then
        -- The profiles inserted again count with the profiles the walk saw. In a
        -- database nobody writes to meanwhile, the walks saw every auth user and every
        -- profile once: as many of each, the logged deletions aside, leaves no profile
        -- missing or orphaned for the merge to find. Writes during the walks make the
        -- counts disagree (the merge then runs, as in a full comparison), or at worst
        -- hide one for this pass: the next pass's counts, at the latest the next full
        -- comparison, find it.
        if not p_dry_run then
          perform user_sync.reconcile_forget_deleted(v_pass.last_id, v_plan.upto, v_pass.horizon);
        end if;
        -- The auth walk counted a profile for each of these users (none was a candidate:
        -- the walk inserts a candidate's missing profile): those not inserted again are not.
        v_pass.profiles := v_pass.profiles - cardinality(v_plan.missing) + v_batch_inserted;
        v_pass.walked_profiles := v_pass.walked_profiles + cardinality(v_plan.missing);
        v_pass.last_id := v_plan.upto;
        if v_plan.upto is null then
          -- The log is done. The walks agree: nothing to merge. They disagree: both
          -- tables are counted again by id bucket (a row moved by an update while the
          -- walks ran, every sign-in's, upsets one bucket), and the buckets that still
          -- disagree are merged.
          if v_pass.auth_users <> v_pass.walked_profiles then
            v_pass.phase := 'recount_auth';
            v_pass.walk_after := null;
            v_pass.walk_blocks := user_sync.reconcile_table_blocks('auth.users');
            v_pass.bucket_differences := array_fill(0, array[4096]);
            v_pass.last_id := null;
          else
            v_end_incremental := true;
          end if;
        end if;
      elsif v_pass.phase in ('recount_auth', 'recount_profiles') then
        v_pass.walk_after := v_range.upto;
        if v_range.last then
          v_pass.walk_after := null;
          if v_pass.phase = 'recount_auth' then
            v_pass.phase := 'recount_profiles';
            v_pass.walk_blocks := user_sync.reconcile_table_blocks('public.users');
          else
            v_pass.walk_blocks := null;
            v_pass.merge_buckets := array(
              select d.n - 1 from unnest(v_pass.bucket_differences) with ordinality d (difference, n)
              where d.difference <> 0 order by d.n);
            v_pass.bucket_differences := null;
            -- (the merge's first batch as small as after a walk: at most twice this)
            v_pass.phase := 'ids';
            v_pass.last_id := null;
            v_pass.batch_rows := least(v_pass.batch_rows, 1000);
            v_end_incremental := cardinality(v_pass.merge_buckets) = 0;
          end if;
        end if;
      elsif v_pass.phase = 'errors' then
        -- The open errors after last_id, as many as a batch compares (in user id order;
        -- to the end, and the errors without a user, once fewer are left).
        select e.user_id into v_errors_upto
        from user_sync.errors e
        where e.resolved_at is null and e.user_id is not null
          and (v_pass.last_id is null or e.user_id > v_pass.last_id)
        order by e.user_id
        offset v_max_candidates - 1 limit 1;
        perform user_sync.reconcile_resolve_errors(v_pass.last_id, v_errors_upto, v_run_id);
        v_pass.last_id := v_errors_upto;
        v_complete := v_errors_upto is null;
      else
        if not p_dry_run and v_pass.merge_buckets is null then
          perform user_sync.reconcile_resolve_errors(v_after, v_plan.upto, v_run_id);
          perform user_sync.reconcile_forget_deleted(v_after, v_plan.upto, v_pass.horizon);
        end if;
        -- (the users a dry incremental pass left out here were counted in phase deleted)
        v_pass.profiles := v_pass.profiles - cardinality(v_missing) + cardinality(v_plan.orphaned)
          + v_batch_inserted - v_batch_deleted;
        v_pass.last_id := v_plan.upto;
        if v_pass.merge_buckets is null then
          v_complete := v_plan.upto is null;
        else
          -- The last bucket to merge is done: the pass ends as one that merged nothing.
          v_end_incremental := v_plan.upto = v_until
            and not exists (select from unnest(v_pass.merge_buckets) b where b > v_bucket);
        end if;
      end if;

      -- An incremental pass left with nothing to merge resolves the open errors: at
      -- once, or a batch at a time when more are open than a batch compares.
      if v_end_incremental then
        if not p_dry_run
           and (select count(*) from (select from user_sync.errors e where e.resolved_at is null
                                      limit v_max_candidates + 1) o) > v_max_candidates then
          v_pass.phase := 'errors';
          v_pass.last_id := null;
        else
          if not p_dry_run then
            perform user_sync.reconcile_resolve_errors(null, null, v_run_id);
          end if;
          v_complete := true;
        end if;
      end if;
      exit when v_complete;

      -- The next batch should take about v_target_ms (a tenth to twice this one's size;
      -- for a walk, the rows its stretch held: a sparse stretch, dead space, says
      -- nothing about the cost of a dense one; a stretch cut short at its candidates or
      -- writes, no more than the rows it kept: the rest was read for nothing). At most
      -- 100,000 rows of a walk or ids of the merge: a stretch whose pages the cache does
      -- not hold, or a merge range whose pages writes took out of the visibility map,
      -- costs many times what the batch before it did (from disk, or while a checkpoint
      -- or autovacuum competes), and a call overruns its budget by at most one batch.
      v_batch_ms := greatest(extract(epoch from clock_timestamp() - v_batch_started) * 1000, 1);
      v_pass.batch_rows := least(greatest(round(
        case when v_rows is null then v_pass.batch_rows
             else least(v_pass.batch_rows, case when v_cut_short then 1 else 2 end * greatest(v_rows, 100)) end
        * least(greatest(v_target_ms / v_batch_ms, 0.1), case when v_cut_short then 1.0 else 2.0 end)), 200),
        100000)::integer;
      exit when p_max_ms is not null
        and clock_timestamp() - v_started >= make_interval(secs => p_max_ms / 1000.0);
    end loop;

    if v_complete then
      -- The pass is complete: its horizon (taken at its start) and the transactions
      -- that wrote profiles are what the next pass starts from.
      v_pass.finished_at := clock_timestamp();
      v_pass.total := v_pass.examined;
      if v_pass.full_compare and v_pass.errors = 0 and not p_dry_run then
        v_pass.last_full_compare_at := v_pass.started_at;
      end if;
    else
      -- Unfinished: the estimate taken at the start, raised to what the pass examined and,
      -- while it walks auth.users, to what the walk read says the table holds (its rows
      -- per page times the pages it walks), so that a total estimated low (stale or sampled
      -- statistics) does not show a full progress bar while the walk goes on.
      v_pass.total := greatest(v_pass.total, v_pass.examined, user_sync.reconcile_walked_estimate(v_pass));
    end if;
    v_pass.updated_at := clock_timestamp();
    update user_sync.reconcile_progress p set
      finished_at = v_pass.finished_at, last_id = v_pass.last_id, examined = v_pass.examined,
      total = v_pass.total, auth_users = v_pass.auth_users, profiles = v_pass.profiles,
      errors = v_pass.errors, written_xids = v_pass.written_xids, batch_rows = v_pass.batch_rows,
      last_full_compare_at = v_pass.last_full_compare_at, updated_at = v_pass.updated_at,
      phase = v_pass.phase, walk_after = v_pass.walk_after, walk_blocks = v_pass.walk_blocks,
      walked_profiles = v_pass.walked_profiles, bucket_differences = v_pass.bucket_differences,
      merge_buckets = v_pass.merge_buckets
    where p.dry_run = p_dry_run;

    v_status := case when v_errors > 0 then 'errors' else 'ok' end;
  exception when others then
    get stacked diagnostics v_state = returned_sqlstate, v_message = message_text;
    v_status := 'failed';
    v_inserted := 0; v_updated := 0; v_deleted := 0; v_examined := 0;
    v_errors := v_errors + 1;
    v_pass.finished_at := null;
    raise warning 'user_sync.reconcile failed (%: %)', v_state, v_message;
  end;

  update user_sync.runs set
    status = v_status,
    finished_at = clock_timestamp(),
    duration_ms = (extract(epoch from clock_timestamp() - v_started) * 1000)::integer,
    auth_users = case when v_pass.finished_at is not null then v_pass.auth_users end,
    profiles = case when v_pass.finished_at is not null then v_pass.profiles end,
    inserted = v_inserted,
    updated = v_updated,
    deleted = v_deleted,
    unchanged = greatest(v_examined - v_inserted - v_updated, 0),
    errors = v_errors,
    error = case when v_status = 'failed' then format('%s: %s', v_state, v_message) end,
    horizon = case when v_status <> 'failed' and not p_dry_run and v_pass.finished_at is not null
                    and v_pass.errors = 0 then v_pass.horizon end,
    basis = v_pass.basis,
    complete = v_status <> 'failed' and v_pass.finished_at is not null,
    examined = case when v_status <> 'failed' then v_pass.examined end,
    total = case when v_status <> 'failed' then v_pass.total end,
    full_compare = v_pass.full_compare
  where id = v_run_id;

  return (
    select jsonb_build_object(
      'run_id', ru.id, 'source', ru.source, 'dry_run', ru.dry_run, 'skipped', false, 'status', ru.status,
      'auth_users', ru.auth_users, 'profiles', ru.profiles,
      'inserted', ru.inserted, 'updated', ru.updated, 'deleted', ru.deleted, 'unchanged', ru.unchanged,
      'errors', ru.errors, 'error', ru.error, 'duration_ms', ru.duration_ms,
      'complete', ru.complete, 'examined', ru.examined, 'total', ru.total,
      'remaining', case when ru.complete then 0 when ru.status <> 'failed' then user_sync.reconcile_remaining(v_pass) end,
      'full_compare', ru.full_compare)
    from user_sync.runs ru where ru.id = v_run_id
  );
end
$$;
comment on function user_sync.reconcile(boolean, text, integer) is
  'Brings public.users in line with auth.users (insert missing, update drifted, remove orphans) in batches. With p_max_ms, stops taking batches after that many milliseconds; the next call continues (complete: false, remaining). Returns the call''s report; {"skipped": true} when another call is in progress.';
revoke execute on function user_sync.reconcile(boolean, text, integer) from public, anon, authenticated;
grant execute on function user_sync.reconcile(boolean, text, integer) to service_role;
