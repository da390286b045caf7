-- -----------------------------------------------------------------------------
-- 0.5.0: the walks of a reconcile pass count the users created by the time the pass
-- started. An incremental pass leaves out the id merge when its walks counted as many
-- profiles as auth users; a user who signed up while it walked (an auth row and a
-- profile, each of which a walk may or may not meet) made the counts disagree, and on
-- a busy project nearly every pass merged (at 10M users, three sign-ups during the
-- profile walk turned a 10 s pass into 146 s: the merge's index-only scans fetched most
-- rows from the heap). Those users' rows are written since the pass's horizon: the
-- next pass takes them. Only the candidates (rows written since the last pass) are
-- looked at again for it; a full comparison counts every row, as before.
-- The walk functions take the pass's horizon and start: new signatures, the old ones
-- dropped.
-- Current definitions: supabase/schemas/80_reconcile.sql.
-- -----------------------------------------------------------------------------

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
-- A few lookups by primary key (in id order), never a hash of the whole table.
set enable_nestloop = on
set enable_hashjoin = off
set enable_mergejoin = off
as $$
declare
  -- age(xmin) <= v_age  <=>  the row version was written at or after p_since.
  v_age bigint := pg_current_xact_id()::text::bigint - p_since::text::bigint;
  v_tids tid[];
begin
  select * into upto, auth_users, v_tids from user_sync.reconcile_walk_candidates(
    'auth.users', p_after, p_upto, '$3::bigint is null or age(t.xmin) <= $3', v_age, null, p_max_candidates,
    p_horizon, p_created_before);
  -- The candidates' ids by tid (a TID Scan of pages just read). A row moved since (a
  -- concurrent update) is newer than the horizon: the next pass sees it.
  select coalesce(array_agg(c.id) filter (where p.id is null), '{}'),
         coalesce(array_agg(c.id) filter (where p.id is not null), '{}')
    into missing, candidates
    from (select au.id from auth.users au where au.ctid = any(v_tids) order by au.id) c
    left join public.users p on p.id = c.id;
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
set enable_nestloop = on
set enable_hashjoin = off
set enable_mergejoin = off
as $$
declare
  v_age bigint := pg_current_xact_id()::text::bigint - p_since::text::bigint;
  v_tids tid[];
begin
  -- The skip list: a hashed lookup.
  select * into upto, profiles, v_tids from user_sync.reconcile_walk_candidates(
    'public.users', p_after, p_upto, 'age(t.xmin) <= $3 and not t.xmin = any($4)', coalesce(v_age, -1), p_skip_xids,
    p_max_candidates, p_horizon, p_created_before);
  -- The candidates' ids by tid, as for the auth walk.
  select coalesce(array_agg(c.id), '{}') into candidates
    from (select u.id from public.users u where u.ctid = any(v_tids) order by u.id) c
    where not exists (
      select 1 from auth.users au
      where au.id = c.id and age(au.xmin) <= v_age);
end
$$;
comment on function user_sync.reconcile_plan_profiles(tid, tid, xid8, xid[], integer, xid8, timestamptz) is
  'A stretch of public.users in physical order, cut after at most p_max_candidates candidates: where it ends, profiles in it (those counted: of users created by the pass''s start) and the candidates written since the horizon by someone else than reconcile.';
revoke execute on function user_sync.reconcile_plan_profiles(tid, tid, xid8, xid[], integer, xid8, timestamptz) from public, anon, authenticated;

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

-- The entry point. Overlapping calls: the second returns {"skipped": true} at once.
-- A dry run changes no profile and reports what it would do (a pass of its own).
-- The report is this call's work (inserted, updated, deleted, errors), where the
-- pass stands (complete, examined, total, remaining) and, once the pass is complete,
-- the table sizes it saw (auth_users, profiles; null while it is not).
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
  v_written bigint;
  v_rewritten bigint;
  v_own bigint;
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
      if v_pass.phase in ('auth', 'profiles') then
        -- A stretch of a walk in physical order.
        v_walked_table := case when v_pass.phase = 'auth' then 'auth.users' else 'public.users' end::regclass;
        select * into v_range from user_sync.reconcile_walk_range(
          v_walked_table,
          v_pass.walk_after, coalesce(v_fixed_rows, v_pass.batch_rows), v_fixed_rows is not null, v_pass.walk_blocks);
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
          -- The profile walk counts each profile once, so that the walks' counts agree in a
          -- database nobody else writes to: not the rows this pass wrote (the auth walk's
          -- writes are counted by it; a profile this walk updates was counted as it read it,
          -- and its new version may land ahead of the walk).
          v_own := 0;
          if v_pass.phase = 'profiles' and cardinality(v_pass.written_xids) > 0 then
            execute 'select count(*) from public.users t where t.ctid > $1 and t.ctid <= $2 and t.xmin = any($3)'
              into v_own using coalesce(v_pass.walk_after, '(0,0)'::tid), v_walked_to, v_pass.written_xids;
          end if;
          v_written := 0;
          v_rewritten := 0;
          if p_dry_run then
            v_inserted := v_inserted + cardinality(v_cut.missing);
            v_updated := v_updated + cardinality(v_cut.drifted);
          else
            for v_step in
              select s.step, s.ids
              from (values (1, 'insert', v_cut.missing), (2, 'update', v_cut.drifted)) s (n, step, ids)
              where cardinality(s.ids) > 0
              order by s.n
            loop
              -- The auth walk's users are in its stretch of auth.users: re-read by tid range.
              select * into v_done from user_sync.reconcile_apply_isolating(
                v_step.step, v_step.ids, v_sync_ts,
                case when v_pass.phase = 'auth' then v_pass.walk_after end,
                case when v_pass.phase = 'auth' then v_walked_to end, v_run_id);
              if v_step.step = 'insert' then
                v_inserted := v_inserted + v_done.rows;
                v_written := v_done.rows;
              else
                v_updated := v_updated + v_done.rows;
              end if;
              v_rewritten := v_rewritten + v_done.rows;
              v_errors := v_errors + v_done.failed;
              v_pass.errors := v_pass.errors + v_done.failed;
              v_pass.written_xids := v_pass.written_xids || v_done.writers;
            end loop;
          end if;
          if v_pass.phase = 'auth' then
            v_examined := v_examined + v_rows;
            v_pass.examined := v_pass.examined + v_rows;
            v_pass.auth_users := v_pass.auth_users + v_rows;
            -- Profiles: the users' (those still missing aside), after this batch's inserts.
            v_pass.profiles := v_pass.profiles + v_rows - cardinality(v_cut.missing) + v_written;
            -- The profiles this batch inserted or updated: the profile walk leaves them out.
            v_pass.walked_profiles := v_pass.walked_profiles + v_rewritten;
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
            v_pass.walk_blocks := pg_catalog.pg_relation_size('public.users'::regclass) / current_setting('block_size')::integer;
          else
            -- A full comparison merges the ids; an incremental pass first looks at the
            -- profiles logged as deleted, and merges only when the walks disagree.
            v_pass.phase := case when v_pass.full_compare then 'ids' else 'deleted' end;
            v_pass.walk_blocks := null;
            v_pass.last_id := null;
          end if;
        end if;
      elsif v_pass.phase = 'deleted' then
        -- The logged deletions, a batch at a time (at most a batch's writes): the
        -- profiles still missing are inserted again, and counted with the profiles the
        -- walk saw. In a database nobody writes to meanwhile, the walks saw every auth
        -- user and every profile once: as many of each, the logged deletions aside,
        -- leaves no profile missing or orphaned for the merge to find. Writes during the
        -- walks make the counts disagree (the merge then runs, as in a full comparison),
        -- or at worst hide one for this pass: the next pass's counts, at the latest the
        -- next full comparison, find it.
        select * into v_plan from user_sync.reconcile_plan_deleted(v_pass.last_id, v_since, v_max_writes);
        v_written := 0;
        if p_dry_run then
          v_inserted := v_inserted + cardinality(v_plan.missing);
        else
          if cardinality(v_plan.missing) > 0 then
            select * into v_done from user_sync.reconcile_apply_isolating(
              'insert', v_plan.missing, v_sync_ts, null, null, v_run_id);
            v_inserted := v_inserted + v_done.rows;
            v_written := v_done.rows;
            v_errors := v_errors + v_done.failed;
            v_pass.errors := v_pass.errors + v_done.failed;
            v_pass.written_xids := v_pass.written_xids || v_done.writers;
          end if;
          -- The batch's entries are seen to (those older than the pass).
          delete from user_sync.deleted_profiles d
          where (v_pass.last_id is null or d.user_id > v_pass.last_id)
            and (v_plan.upto is null or d.user_id <= v_plan.upto)
            and d.deleted_xid < v_pass.horizon;
        end if;
        v_pass.profiles := v_pass.profiles + v_written;
        v_pass.walked_profiles := v_pass.walked_profiles + cardinality(v_plan.missing);
        v_pass.last_id := v_plan.upto;
        if v_plan.upto is null then
          -- The log is done.
          if v_pass.auth_users <> v_pass.walked_profiles then
            -- (the merge's first batch as small as after a walk: at most twice this)
            v_pass.phase := 'ids';
            v_pass.last_id := null;
            v_pass.batch_rows := least(v_pass.batch_rows, 1000);
          elsif not p_dry_run
                and (select count(*) from (select from user_sync.errors e where e.resolved_at is null
                                           limit v_max_candidates + 1) o) > v_max_candidates then
            -- More errors open than a batch compares: a batch of them at a time.
            v_pass.phase := 'errors';
            v_pass.last_id := null;
          else
            if not p_dry_run then
              perform user_sync.reconcile_resolve_errors(null, null, v_run_id);
            end if;
            v_complete := true;
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
        -- The next id range of both keys: missing profiles the walk did not look at, orphans.
        select * into v_plan from user_sync.reconcile_plan_ids(
          v_pass.last_id, coalesce(v_fixed_rows, v_pass.batch_rows), v_fixed_rows is not null, v_pass.total, v_since,
          v_max_writes);
        v_written := 0;
        if p_dry_run then
          -- (a dry incremental pass counted the logged deletions already, and left them)
          v_inserted := v_inserted + cardinality(v_plan.missing) - case when v_pass.full_compare then 0 else (
            select count(*) from unnest(v_plan.missing) m (id)
            where m.id = any (array(select d.user_id from user_sync.deleted_profiles d
                                    where d.user_id = any (v_plan.missing)))) end;
          v_deleted := v_deleted + cardinality(v_plan.orphaned);
        else
          for v_step in
            select s.step, s.ids
            from (values (1, 'insert', v_plan.missing), (2, 'delete', v_plan.orphaned)) s (n, step, ids)
            where cardinality(s.ids) > 0
            order by s.n
          loop
            select * into v_done from user_sync.reconcile_apply_isolating(v_step.step, v_step.ids, v_sync_ts, null, null, v_run_id);
            if v_step.step = 'insert' then
              v_inserted := v_inserted + v_done.rows;
              v_written := v_written + v_done.rows;
            else
              v_deleted := v_deleted + v_done.rows;
              v_written := v_written - v_done.rows;
            end if;
            v_errors := v_errors + v_done.failed;
            v_pass.errors := v_pass.errors + v_done.failed;
            v_pass.written_xids := v_pass.written_xids || v_done.writers;
          end loop;
          perform user_sync.reconcile_resolve_errors(v_pass.last_id, v_plan.upto, v_run_id);
          -- The logged deletions of the range are seen to.
          delete from user_sync.deleted_profiles d
          where (v_pass.last_id is null or d.user_id > v_pass.last_id)
            and (v_plan.upto is null or d.user_id <= v_plan.upto)
            and d.deleted_xid < v_pass.horizon;
        end if;
        v_pass.profiles := v_pass.profiles - cardinality(v_plan.missing) + cardinality(v_plan.orphaned) + v_written;
        v_pass.last_id := v_plan.upto;
        v_complete := v_plan.upto is null;
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
      v_pass.total := greatest(v_pass.total, v_pass.examined);
    end if;
    v_pass.updated_at := clock_timestamp();
    update user_sync.reconcile_progress p set
      finished_at = v_pass.finished_at, last_id = v_pass.last_id, examined = v_pass.examined,
      total = v_pass.total, auth_users = v_pass.auth_users, profiles = v_pass.profiles,
      errors = v_pass.errors, written_xids = v_pass.written_xids, batch_rows = v_pass.batch_rows,
      last_full_compare_at = v_pass.last_full_compare_at, updated_at = v_pass.updated_at,
      phase = v_pass.phase, walk_after = v_pass.walk_after, walk_blocks = v_pass.walk_blocks,
      walked_profiles = v_pass.walked_profiles
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

-- The parts as they were, before they took the pass's horizon and start.
drop function user_sync.reconcile_plan_auth(tid, tid, xid8, integer);
drop function user_sync.reconcile_plan_profiles(tid, tid, xid8, xid[], integer);
drop function user_sync.reconcile_walk_candidates(regclass, tid, tid, text, bigint, xid[], integer);
drop function user_sync.reconcile_cut_writes(regclass, tid, tid, bigint, uuid[], uuid[], integer);
