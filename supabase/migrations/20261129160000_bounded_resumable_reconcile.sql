-- =============================================================================
-- User Sync for Supabase v0.2.0: reconcile in bounded, resumable calls.
--
-- user_sync.reconcile(p_dry_run, p_source, p_max_ms) walks auth users in id order,
-- batch by batch; with p_max_ms a call stops after that many milliseconds and the
-- next call continues from user_sync.reconcile_progress. Once a day (configurable,
-- user_sync.config.full_compare_every) a pass compares every profile. status()
-- shows an unfinished pass (heal). The old two-argument reconcile goes.
-- Current definitions: supabase/schemas/10_config.sql, 40_logs.sql,
-- 75_reconcile_progress.sql, 80_reconcile.sql, 85_status.sql.
-- =============================================================================

alter table user_sync.config
  add column if not exists full_compare_every interval not null default '1 day' check (full_compare_every > interval '0');
comment on column user_sync.config.full_compare_every is
  'How often reconcile compares every profile with its auth user instead of only the rows written since its last complete pass (default once a day).';

alter table user_sync.runs add column if not exists complete boolean;
alter table user_sync.runs add column if not exists examined bigint;
alter table user_sync.runs add column if not exists total bigint;
alter table user_sync.runs add column if not exists full_compare boolean;
comment on column user_sync.runs.horizon is
  'Set by the call that completes a successful (not dry) pass; taken when the pass started: every auth user and profile whose row version is older than this transaction id was in sync when the pass looked. The next pass re-derives only rows written since (see user_sync.reconcile_progress).';
comment on column user_sync.runs.basis is
  'Fingerprint of what profiles are derived from besides the rows (field rules, config, roles, the tables'' storage, the cluster). A horizon is only used under the same basis.';
comment on column user_sync.runs.complete is
  'Whether the pass this call belonged to is finished (false: a bounded call stopped at its time budget; the next call continues).';
comment on column user_sync.runs.examined is 'Auth users the pass had examined when this call ended (all calls of the pass so far).';
comment on column user_sync.runs.total is 'Auth users the pass expects to examine (an estimate while the pass runs).';
comment on column user_sync.runs.full_compare is 'Whether the pass compared every profile (true) or only rows written since the last complete pass.';

-- -----------------------------------------------------------------------------
-- Reconcile progress: where the pass in progress stands, so that bounded calls
-- (user_sync.reconcile(..., p_max_ms)) continue one another from any runner and
-- across a crash: each call moves it forward in the transaction that does the work.
-- One row per kind of pass (real, dry run). A finished real pass stays until the
-- next one starts: its horizon tells the next pass which rows it may skip.
-- -----------------------------------------------------------------------------
create table if not exists user_sync.reconcile_progress (
  dry_run boolean primary key,
  run_id bigint not null,
  started_at timestamptz not null,
  finished_at timestamptz,
  full_compare boolean not null,
  since xid8,
  skip_xids xid[] not null default '{}',
  horizon xid8 not null,
  basis text not null,
  last_id uuid,
  examined bigint not null default 0,
  total bigint,
  auth_users bigint not null default 0,
  profiles bigint not null default 0,
  errors bigint not null default 0,
  written_xids xid[] not null default '{}',
  batch_rows integer not null,
  last_full_compare_at timestamptz,
  updated_at timestamptz not null default now()
);
comment on table user_sync.reconcile_progress is
  'The reconcile pass in progress (finished_at null) or the last finished one, per kind (dry_run). Bounded reconcile calls continue from here.';
comment on column user_sync.reconcile_progress.run_id is 'The user_sync.runs row of the call that started the pass.';
comment on column user_sync.reconcile_progress.finished_at is 'When the pass examined its last user; null while it is in progress.';
comment on column user_sync.reconcile_progress.full_compare is
  'The pass compares every profile; otherwise only rows written since the last finished pass (since), plus missing and orphaned profiles.';
comment on column user_sync.reconcile_progress.since is 'The horizon of the last finished pass the incremental comparison starts from; null for a full comparison.';
comment on column user_sync.reconcile_progress.skip_xids is
  'Transactions of the last finished pass that wrote profiles: those row versions were in sync when written, so the pass does not re-derive them.';
comment on column user_sync.reconcile_progress.horizon is
  'Taken when the pass started: every row version older than this was visible to the pass. A finished pass without errors hands it on as the next pass''s since.';
comment on column user_sync.reconcile_progress.basis is 'Fingerprint of the rules and settings the pass compares under; a change restarts the pass as a full comparison.';
comment on column user_sync.reconcile_progress.last_id is 'The last auth user id examined (the pass walks ids in order); null before the first batch.';
comment on column user_sync.reconcile_progress.examined is 'Auth users examined so far.';
comment on column user_sync.reconcile_progress.total is 'Auth users to examine: the planner''s estimate when the pass started, the exact count when it finished.';
comment on column user_sync.reconcile_progress.auth_users is 'Auth users seen by the batches so far.';
comment on column user_sync.reconcile_progress.profiles is 'Profiles after the batches so far.';
comment on column user_sync.reconcile_progress.errors is 'Users that failed in this pass (see user_sync.errors); a pass with errors hands on no horizon.';
comment on column user_sync.reconcile_progress.written_xids is 'Transactions of this pass that wrote profiles (skip_xids of the next pass).';
comment on column user_sync.reconcile_progress.batch_rows is 'Auth users per batch, adapted to the time a batch takes; carried from call to call.';
comment on column user_sync.reconcile_progress.last_full_compare_at is 'Start of the last finished full comparison (user_sync.config.full_compare_every).';
comment on column user_sync.reconcile_progress.updated_at is 'Last call that moved the pass.';
revoke all on user_sync.reconcile_progress from public, anon, authenticated;
grant select on user_sync.reconcile_progress to service_role;

drop function if exists user_sync.reconcile(boolean, text);

-- -----------------------------------------------------------------------------
-- user_sync.reconcile: bring the whole table in line, in bounded, resumable calls.
--
-- A pass walks auth users in id order, one batch at a time: plan the batch (which
-- profiles are missing, which may have drifted, which are orphaned), apply it
-- (insert, update, delete; a failing row is isolated and recorded, the rest of the
-- batch goes through), move user_sync.reconcile_progress forward. A call with
-- p_max_ms stops taking batches once that much time has passed; the next call, from
-- any runner, continues where the last committed one stopped. A call without it
-- finishes the pass. The parts, in the order a call uses them:
--   reconcile_basis          what profiles derive from besides the rows
--   reconcile_start_pass     a new pass: full or incremental comparison, horizon
--   reconcile_plan_batch     the next batch's ids: missing, candidates, orphaned
--   reconcile_apply          one set-based step (insert, update, delete) by ids
--   reconcile_apply_isolating  the same, splitting a failing set down to its bad rows
--   reconcile_resolve_errors   open errors of users now in sync are resolved
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

-- Starts a pass of the given kind. It compares every profile when there is no
-- finished pass to start from (first pass, errors, other basis, too old for 32-bit
-- transaction ids) or when the last full comparison is older than
-- user_sync.config.full_compare_every; otherwise only rows written since the last
-- finished pass. Its horizon is taken now, at the start, never at the end.
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
  v_last user_sync.reconcile_progress;
  v_full boolean;
  v_total bigint;
  v_pass user_sync.reconcile_progress;
begin
  select * into v_last from user_sync.reconcile_progress p
  where not p.dry_run and p.finished_at is not null;
  v_full := v_last.horizon is null
    or v_last.errors > 0
    or v_last.basis is distinct from p_basis
    or v_last.last_full_compare_at is null
    or v_last.last_full_compare_at < now() - (select c.full_compare_every from user_sync.config c)
    or pg_current_xact_id()::text::bigint - v_last.horizon::text::bigint > 1000000000;

  -- The planner's estimate, scaled to the table's current size as the planner does
  -- (counted when the table was never analyzed or was empty then, up to 100,000).
  select case when c.relpages > 0 and c.reltuples > 0 then
           (c.reltuples / c.relpages * (pg_catalog.pg_relation_size(c.oid) / current_setting('block_size')::integer))::bigint
         end into v_total
  from pg_catalog.pg_class c where c.oid = 'auth.users'::regclass;
  if v_total is null then
    select count(*) into v_total from (select 1 from auth.users limit 100000) x;
    if v_total = 100000 then v_total := null; end if;
  end if;

  insert into user_sync.reconcile_progress as p (
    dry_run, run_id, started_at, finished_at, full_compare, since, skip_xids, horizon, basis,
    last_id, examined, total, auth_users, profiles, errors, written_xids, batch_rows,
    last_full_compare_at, updated_at)
  values (
    p_dry_run, p_run_id, now(), null, v_full,
    case when not v_full then v_last.horizon end,
    case when not v_full then v_last.written_xids else '{}' end,
    pg_snapshot_xmin(pg_current_snapshot()), p_basis,
    null, 0, v_total, 0, 0, 0, '{}', p_batch_rows,
    v_last.last_full_compare_at, now())
  on conflict (dry_run) do update set
    run_id = excluded.run_id, started_at = excluded.started_at, finished_at = null,
    full_compare = excluded.full_compare, since = excluded.since, skip_xids = excluded.skip_xids,
    horizon = excluded.horizon, basis = excluded.basis, last_id = null, examined = 0,
    total = excluded.total, auth_users = 0, profiles = 0, errors = 0, written_xids = '{}',
    batch_rows = excluded.batch_rows,
    -- a dry pass never finishes a full comparison of the real kind
    last_full_compare_at = case when p.dry_run then p.last_full_compare_at else excluded.last_full_compare_at end,
    updated_at = now()
  returning * into v_pass;
  return v_pass;
end
$$;
comment on function user_sync.reconcile_start_pass(boolean, bigint, text, integer) is
  'Starts a reconcile pass (full or incremental comparison, horizon taken now) in user_sync.reconcile_progress.';
revoke execute on function user_sync.reconcile_start_pass(boolean, bigint, text, integer) from public, anon, authenticated;

-- The next batch after p_after (null: from the first id): about p_rows auth users
-- and the profiles in the same id range, paired by id. Missing and orphaned profiles
-- are found from ids alone; candidates (both sides exist) are the rows the field
-- rules must look at: all of them in a full comparison (p_since null), else those
-- with a row version written since p_since and not by p_skip_xids. upto is the last
-- id of the batch, null when the batch runs to the end of both tables.
create or replace function user_sync.reconcile_plan_batch(
  p_after uuid,
  p_rows integer,
  p_since xid8,
  p_skip_xids xid[],
  out upto uuid,
  out auth_users bigint,
  out profiles bigint,
  out missing uuid[],
  out candidates uuid[],
  out orphaned uuid[]
)
language plpgsql
set search_path = ''
-- Both sides come in id order from their primary keys: a merge join reads them once
-- without building a hash table (a third faster than the hash join here).
set enable_mergejoin = on
set enable_hashjoin = off
as $$
declare
  -- age(xmin) <= v_age  <=>  the row version was written at or after p_since.
  v_age bigint := pg_current_xact_id()::text::bigint - p_since::text::bigint;
  v_after text := case when p_after is null then 'true' else '%I.id > $1' end;
begin
  execute format('select au.id from auth.users au where %s order by au.id offset $2 - 1 limit 1',
      format(v_after, 'au'))
    into upto using p_after, greatest(p_rows, 1);
  -- Run as dynamic SQL with the values as constants: each call is planned for its
  -- own range, and the skip list becomes a hashed lookup.
  execute format($q$
    select count(a.id), count(p.id),
           coalesce(array_agg(a.id) filter (where p.id is null), '{}'),
           coalesce(array_agg(a.id) filter (where a.id is not null and p.id is not null and (a.recent or p.recent)), '{}'),
           coalesce(array_agg(p.id) filter (where a.id is null), '{}')
    from (
      select au.id, coalesce(age(au.xmin) <= $3, true) or au.created_at is null as recent
      from auth.users au where %s and ($2::uuid is null or au.id <= $2)
    ) a
    full join (
      select u.id, coalesce(age(u.xmin) <= $3 and not u.xmin = any($4), true) as recent
      from public.users u where %s and ($2::uuid is null or u.id <= $2)
    ) p on p.id = a.id$q$, format(v_after, 'au'), format(v_after, 'u'))
    into auth_users, profiles, missing, candidates, orphaned
    using p_after, upto, v_age, p_skip_xids;
end
$$;
comment on function user_sync.reconcile_plan_batch(uuid, integer, xid8, xid[]) is
  'The next reconcile batch after an id: missing, candidate (field rules to check) and orphaned ids, and the batch''s last id (null at the end).';
revoke execute on function user_sync.reconcile_plan_batch(uuid, integer, xid8, xid[]) from public, anon, authenticated;

-- One set-based step for the given users, each re-read by id (their state may have
-- moved since the batch was planned): 'insert' missing profiles (one the trigger
-- inserted meanwhile wins), 'update' drifted ones (a row changed since it was read,
-- xmin moved, is left to the writer that changed it), 'delete' orphans, 'count'
-- drifted ones (a dry run). Raises on any failing row; the caller isolates it.
-- Answers how many rows it wrote (or counted) and the transaction that wrote them.
create or replace function user_sync.reconcile_apply(
  p_step text,
  p_ids uuid[],
  p_sync_ts timestamptz,
  out rows bigint,
  out writer xid
)
language plpgsql
set search_path = ''
as $$
declare
  -- The ids' range as well: an index range scan, the ids a hashed filter on it.
  v_lo uuid;
  v_hi uuid;
begin
  select i into v_lo from unnest(p_ids) i order by i limit 1;
  select i into v_hi from unnest(p_ids) i order by i desc limit 1;
  case p_step
  when 'insert' then
    execute format($q$
      with done as (
        insert into public.users (
          id, email, phone, name, avatar_url, role, provider, providers, is_anonymous,
          email_confirmed_at, last_sign_in_at, created_at, deleted_at, updated_at, synced_at
        )
        select
          d.id, d.email, d.phone, d.name, d.avatar_url, d.role, d.provider, d.providers, d.is_anonymous,
          d.email_confirmed_at, d.last_sign_in_at, d.created_at, d.deleted_at, now(), $1
        from (%s) d
        where d.id between $3 and $4 and d.id = any($2)
        on conflict (id) do nothing
        returning xmin
      )
      select count(*), min(done.xmin::text)::xid from done$q$, user_sync.expected_profiles_sql())
      into rows, writer using p_sync_ts, p_ids, v_lo, v_hi;
  when 'update' then
    execute format($q$
      with todo as materialized (
        select x.* from (%s) x
        where x.id between $3 and $4 and x.profile_id between $3 and $4
          and x.id = any($1) and x.profile_id = any($1) and x.drifted
      ), done as (
        update public.users u set
          email = t.email,
          phone = t.phone,
          name = case when u.name_edited_at is null then t.name else u.name end,
          avatar_url = case when u.avatar_url_edited_at is null then t.avatar_url else u.avatar_url end,
          role = t.role,
          provider = t.provider,
          providers = t.providers,
          is_anonymous = t.is_anonymous,
          email_confirmed_at = t.email_confirmed_at,
          last_sign_in_at = t.last_sign_in_at,
          created_at = t.created_at,
          deleted_at = t.deleted_at,
          updated_at = now(),
          synced_at = $2
        from todo t
        where u.id between $3 and $4 and u.id = any($1) and u.id = t.id and u.xmin = t.profile_xmin
        returning u.xmin
      )
      select count(*), min(done.xmin::text)::xid from done$q$, user_sync.profile_diff_sql())
      into rows, writer using p_ids, p_sync_ts, v_lo, v_hi;
  when 'count' then
    execute format($q$
      select count(*) from (%s) x
      where x.id between $2 and $3 and x.profile_id between $2 and $3
        and x.id = any($1) and x.profile_id = any($1) and x.drifted$q$, user_sync.profile_diff_sql())
      into rows using p_ids, v_lo, v_hi;
  when 'delete' then
    with done as (
      delete from public.users u
      where u.id between v_lo and v_hi and u.id = any(p_ids)
        and not exists (select 1 from auth.users au where au.id = u.id)
      returning 1
    )
    select count(*) into rows from done;
  else
    raise exception using errcode = '22023', message = format('user_sync.reconcile_apply: unknown step %L', p_step);
  end case;
end
$$;
comment on function user_sync.reconcile_apply(text, uuid[], timestamptz) is
  'One set-based reconcile step (insert, update, delete, count) for the given users; raises when any row fails.';
revoke execute on function user_sync.reconcile_apply(text, uuid[], timestamptz) from public, anon, authenticated;

-- reconcile_apply, isolating failures: the set is tried whole (one statement, the
-- usual case). When a row's data fails it, the failing user is recorded in
-- user_sync.errors and the set is tried again without that user: Postgres names it
-- (a user deleted after the statement's snapshot: 23503 "Key (id)=(...)"; a check or
-- not-null constraint: "Failing row contains (id, ..."). When it is not named (e.g. a
-- unique index the app added), the set is split in halves down to the failing rows:
-- k bad rows among n cost about 2k log2(n) small statements. The batch goes on.
create or replace function user_sync.reconcile_apply_isolating(
  p_step text,
  p_ids uuid[],
  p_sync_ts timestamptz,
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
      select a.rows, a.writer into v_left from user_sync.reconcile_apply(p_step, v_ids, p_sync_ts) a;
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
  select * into v_left from user_sync.reconcile_apply_isolating(p_step, v_ids[1:v_n / 2], p_sync_ts, p_run_id);
  select * into v_right from user_sync.reconcile_apply_isolating(p_step, v_ids[v_n / 2 + 1:v_n], p_sync_ts, p_run_id);
  rows := rows + v_left.rows + v_right.rows;
  failed := failed + v_left.failed + v_right.failed;
  writers := writers || v_left.writers || v_right.writers;
end
$$;
comment on function user_sync.reconcile_apply_isolating(text, uuid[], timestamptz, bigint) is
  'reconcile_apply for a set of users; each user whose row fails is recorded in user_sync.errors and the rest is applied.';
revoke execute on function user_sync.reconcile_apply_isolating(text, uuid[], timestamptz, bigint) from public, anon, authenticated;

-- Open errors of users in the id range (p_after, p_upto] (other than this call's)
-- are resolved when the user is now in sync or gone; with p_upto null, to the end,
-- and errors without a user too.
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
  v_any boolean;
begin
  select coalesce(array_agg(distinct e.user_id) filter (where e.user_id is not null), '{}'),
         count(*) filter (where e.user_id is not null or p_upto is null) > 0
    into v_open, v_any
    from user_sync.errors e
    where e.resolved_at is null and e.run_id is distinct from p_run_id
      and (e.user_id is null
           or ((p_after is null or e.user_id > p_after) and (p_upto is null or e.user_id <= p_upto)));
  if not v_any then
    return;
  end if;
  execute format($q$
    update user_sync.errors e set resolved_at = now()
    where e.resolved_at is null
      and e.run_id is distinct from $2
      and ((e.user_id is null and $3) or e.user_id = any($1))
      and not exists (
        select 1 from (%s) x
        where x.id = any($1) and x.id = e.user_id and (x.missing or x.drifted)
      )$q$, user_sync.profile_diff_sql())
    using v_open, p_run_id, p_upto is null;
end
$$;
comment on function user_sync.reconcile_resolve_errors(uuid, uuid, bigint) is
  'Resolves the open errors of users in an id range that are now in sync or gone.';
revoke execute on function user_sync.reconcile_resolve_errors(uuid, uuid, bigint) from public, anon, authenticated;

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
-- not yet analyzed): hash joins read each side once.
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
  v_plan record;
  v_step record;
  v_done record;
  v_batch_started timestamptz;
  v_batch_ms numeric;
  -- A batch should take about this long: a bounded call overruns its budget by at
  -- most one batch, and holds the rows it wrote for at most budget + one batch.
  v_target_ms constant numeric := case when p_max_ms is null then 1000 else least(greatest(p_max_ms / 4.0, 50), 400) end;
  -- Tests and benchmarks may fix the batch size.
  v_fixed_rows constant integer := nullif(current_setting('user_sync.reconcile_batch_rows', true), '')::integer;
  v_sync_ts timestamptz;
  v_inserted bigint := 0;
  v_updated bigint := 0;
  v_deleted bigint := 0;
  v_errors integer := 0;
  v_examined bigint := 0;
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
    -- The pass in progress, or a new one (none yet, the last one finished, or the
    -- rules or settings changed under it).
    v_basis := user_sync.reconcile_basis();
    select * into v_pass from user_sync.reconcile_progress p where p.dry_run = p_dry_run for update;
    if v_pass.dry_run is null or v_pass.finished_at is not null or v_pass.basis is distinct from v_basis then
      v_pass := user_sync.reconcile_start_pass(p_dry_run, v_run_id, v_basis, coalesce(v_fixed_rows, 1000));
    end if;

    loop
      v_batch_started := clock_timestamp();
      select * into v_plan from user_sync.reconcile_plan_batch(
        v_pass.last_id, coalesce(v_fixed_rows, v_pass.batch_rows), v_pass.since, v_pass.skip_xids);

      if p_dry_run then
        v_inserted := v_inserted + cardinality(v_plan.missing);
        v_updated := v_updated + (select a.rows from user_sync.reconcile_apply('count', v_plan.candidates, null) a);
        v_deleted := v_deleted + cardinality(v_plan.orphaned);
      else
        v_sync_ts := clock_timestamp();
        for v_step in
          select s.step, s.ids
          from (values (1, 'insert', v_plan.missing), (2, 'update', v_plan.candidates), (3, 'delete', v_plan.orphaned)) s (n, step, ids)
          where cardinality(s.ids) > 0
          order by s.n
        loop
          select * into v_done from user_sync.reconcile_apply_isolating(v_step.step, v_step.ids, v_sync_ts, v_run_id);
          case v_step.step
            when 'insert' then v_inserted := v_inserted + v_done.rows;
            when 'update' then v_updated := v_updated + v_done.rows;
            else v_deleted := v_deleted + v_done.rows;
          end case;
          v_errors := v_errors + v_done.failed;
          v_pass.errors := v_pass.errors + v_done.failed;
          v_pass.written_xids := v_pass.written_xids || v_done.writers;
        end loop;
        perform user_sync.reconcile_resolve_errors(v_pass.last_id, v_plan.upto, v_run_id);
      end if;

      v_examined := v_examined + v_plan.auth_users;
      v_pass.examined := v_pass.examined + v_plan.auth_users;
      v_pass.auth_users := v_pass.auth_users + v_plan.auth_users;
      v_pass.profiles := v_pass.profiles + v_plan.profiles;
      v_pass.last_id := v_plan.upto;
      exit when v_plan.upto is null;

      -- The next batch should take about v_target_ms (half to twice this one's size).
      v_batch_ms := greatest(extract(epoch from clock_timestamp() - v_batch_started) * 1000, 1);
      v_pass.batch_rows := least(greatest(
        round(v_pass.batch_rows * least(greatest(v_target_ms / v_batch_ms, 0.5), 2.0)), 200), 100000)::integer;
      exit when p_max_ms is not null
        and clock_timestamp() - v_started >= make_interval(secs => p_max_ms / 1000.0);
    end loop;

    if not p_dry_run then
      v_pass.profiles := v_pass.profiles + v_inserted - v_deleted;
    end if;
    if v_plan.upto is null then
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
      last_full_compare_at = v_pass.last_full_compare_at, updated_at = v_pass.updated_at
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
      'remaining', case when ru.complete then 0 when ru.total is not null then greatest(ru.total - ru.examined, 0) end,
      'full_compare', ru.full_compare)
    from user_sync.runs ru where ru.id = v_run_id
  );
end
$$;
comment on function user_sync.reconcile(boolean, text, integer) is
  'Brings public.users in line with auth.users (insert missing, update drifted, remove orphans) in batches. With p_max_ms, stops taking batches after that many milliseconds; the next call continues (complete: false, remaining). Returns the call''s report; {"skipped": true} when another call is in progress.';
revoke execute on function user_sync.reconcile(boolean, text, integer) from public, anon, authenticated;
grant execute on function user_sync.reconcile(boolean, text, integer) to service_role;

-- -----------------------------------------------------------------------------
-- user_sync.status: counts for dashboards and the sync-all GET endpoint. The counts
-- come from one pass over both tables with the field rules (dynamic SQL: see
-- 30_field_rules.sql). heal: the unfinished reconcile pass, if any (examined so far,
-- total expected, users per second since it started, seconds left at that rate).
-- -----------------------------------------------------------------------------
create or replace function user_sync.status() returns jsonb
language plpgsql
stable
security definer
set search_path = ''
set jit = off
as $$
declare
  v_counts jsonb;
begin
  execute format($q$
    select jsonb_build_object(
      'auth_users', count(x.id), 'profiles', count(x.profile_id),
      'missing', count(*) filter (where x.missing), 'orphaned', count(*) filter (where x.orphaned),
      'drifted', count(*) filter (where x.drifted))
    from (%s) x$q$, user_sync.profile_diff_sql())
    into v_counts;
  return v_counts || jsonb_build_object(
    'open_errors', (select count(*) from user_sync.errors e where e.resolved_at is null),
    'health', user_sync.health(),
    'version', user_sync.version(),
    'heal', (
      select jsonb_build_object(
        'examined', h.examined, 'total', h.total, 'rate', h.rate,
        'eta_seconds', case when h.rate > 0 and h.total is not null
                            then ceil(greatest(h.total - h.examined, 0) / h.rate)::bigint end,
        'started_at', h.started_at)
      from (
        select p.examined, p.total, p.started_at,
               round(p.examined / greatest(extract(epoch from clock_timestamp() - p.started_at), 0.001), 1) as rate
        from user_sync.reconcile_progress p
        where not p.dry_run and p.finished_at is null
      ) h
    ),
    'last_run', (
      select jsonb_build_object(
        'run_id', r.id, 'source', r.source, 'dry_run', r.dry_run, 'status', r.status,
        'started_at', r.started_at, 'finished_at', r.finished_at, 'duration_ms', r.duration_ms,
        'inserted', r.inserted, 'updated', r.updated, 'deleted', r.deleted, 'errors', r.errors)
      from user_sync.runs r order by r.id desc limit 1
    )
  );
end
$$;
comment on function user_sync.status() is
  'Sync health: auth_users, profiles, missing, orphaned, drifted, open_errors, health {ok, problems}, version, heal {examined, total, rate, eta_seconds, started_at} (null when no reconcile pass is unfinished), last_run.';
revoke execute on function user_sync.status() from public, anon, authenticated;
grant execute on function user_sync.status() to service_role;
