-- -----------------------------------------------------------------------------
-- 0.5.0: reconcile's lookups keep their plans whatever the statistics say.
--   * A table analyzed while empty (a new install, or a table emptied before a bulk
--     import or a heal) keeps statistics that say it is empty until autovacuum analyzes it
--     again. A heal started meanwhile had its lookups planned for empty tables: the
--     candidates of a batch were found by reading the whole primary key of auth.users (an
--     ordered index scan filtered by tid), and their profiles by reading a whole index of
--     public.users once per candidate (a join filter instead of a lookup). Measured at
--     300,000 users: 1.0-1.5 s a call for 300 to 600 users, against about 30,000 once
--     autovacuum had analyzed the tables.
--   * The walks' lookups are now a TID Scan and scans by the ids (id = any), no join, with
--     sequential scans ruled out (reconcile_plan_auth, reconcile_plan_profiles,
--     reconcile_plan_deleted); and each reconcile call analyzes public.users first when its
--     statistics say less than a profile a page and a sample shows ten times more
--     (user_sync.refresh_profile_statistics). auth.users belongs to Supabase Auth: only
--     its owner may analyze it, and no lookup of ours depends on its statistics any more.
--   * A total estimated low (statistics from before a bulk insert, or a sample) showed a
--     full progress bar while the walk of auth.users went on: an unfinished pass now also
--     raises its total to what the walk has read says the table holds (rows per page
--     times the pages it walks: user_sync.reconcile_walked_estimate).
-- Current definitions: supabase/schemas/80_reconcile.sql.
-- -----------------------------------------------------------------------------

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
