-- -----------------------------------------------------------------------------
-- user_sync.reconcile: bring the whole table in line, set-based.
-- Inserts missing profiles, updates drifted ones, removes orphans. A row changed
-- concurrently (xmin moved) is left to the writer that changed it. Overlapping runs:
-- the second returns {"skipped": true} at once. A dry run changes no profile and
-- reports what it would do. If the set-based pass fails (e.g. a bad row), each
-- affected user is synced alone and failures are recorded per user.
-- -----------------------------------------------------------------------------
create or replace function user_sync.reconcile(
  p_dry_run boolean default false,
  p_source text default 'manual'
) returns jsonb
language plpgsql
security definer
set search_path = ''
-- Whole-table passes must not turn into nested loops when statistics are stale (a
-- bulk import not yet analyzed): a nested-loop anti-join that probes public.users
-- while the same statement inserts into it is quadratic. Hash joins read each side once.
set enable_nestloop = off
set enable_mergejoin = off
-- JIT compiling the field rules costs more than it saves here (1M users: name
-- derivation 1.4 s without, 2.6 s with; 0.6-4 s of compile time per bulk statement).
set jit = off
as $$
declare
  v_started timestamptz := clock_timestamp();
  v_sync_ts timestamptz;
  v_run_id bigint;
  v_auth_users bigint;
  v_profiles bigint;
  v_inserted bigint := 0;
  v_updated bigint := 0;
  v_deleted bigint := 0;
  v_errors integer := 0;
  v_n bigint;
  v_todo bigint;
  v_state text;
  v_message text;
  v_status text;
  v_missing uuid[];
  v_drifted uuid[];
  v_orphaned uuid[];
  v_open_errors uuid[];
  v_any boolean;
  -- Above this many missing profiles they are inserted in one pass over auth.users.
  v_bulk constant integer := 5000;
  v_cluster text;
  v_basis text;
  v_horizon xid8;
  v_prev xid8;
  v_prev_basis text;
  v_age bigint;
  v_recent uuid[];
  v_complete boolean := true;
  v_user_id uuid;
  -- The field rules as query texts (user_sync.expected_profiles_sql / profile_diff_sql):
  -- run as dynamic SQL, so nothing of ours depends on auth.users columns.
  v_expected_sql constant text := user_sync.expected_profiles_sql();
  v_diff_sql constant text := user_sync.profile_diff_sql();
begin
  if p_dry_run is null then
    raise exception using errcode = '22004', message = 'user_sync.reconcile: p_dry_run must not be null';
  end if;
  if p_source is null or p_source !~ '^[a-z][a-z0-9_-]{0,39}$' then
    raise exception using errcode = '22023',
      message = format('user_sync.reconcile: invalid p_source %L', p_source),
      hint = 'Use lower-case letters, digits, - and _ (at most 40), e.g. cron, manual, api.';
  end if;

  -- One reconcile at a time, cluster-wide; held until the transaction ends.
  if not pg_try_advisory_xact_lock(hashtextextended('user_sync.reconcile', 0)) then
    insert into user_sync.runs (source, dry_run, status, finished_at, duration_ms)
    values (p_source, p_dry_run, 'skipped', clock_timestamp(), 0)
    returning id into v_run_id;
    return jsonb_build_object(
      'skipped', true, 'run_id', v_run_id, 'source', p_source, 'dry_run', p_dry_run,
      'reason', 'another reconcile is in progress');
  end if;

  insert into user_sync.runs (source, dry_run) values (p_source, p_dry_run) returning id into v_run_id;

  begin
    -- What profiles are derived from besides the rows themselves. A change to any of
    -- it (a new field rule, config, a role, a rewritten table, another cluster after a
    -- restore) makes the next run look at every row again.
    begin
      select c.system_identifier::text into v_cluster from pg_catalog.pg_control_system() c;
    exception when others then
      v_cluster := '';
    end;
    v_basis := md5(concat_ws('|', v_cluster,
      pg_relation_filenode('auth.users'::regclass), pg_relation_filenode('public.users'::regclass),
      v_diff_sql,
      (select string_agg(c::text, ',') from user_sync.config c),
      (select string_agg(ro.role, ',' order by ro.role) from user_sync.roles ro)));
    -- Every transaction that wrote a row older than this had ended before the pass
    -- below started, so the pass sees all such rows as they are.
    v_horizon := pg_snapshot_xmin(pg_current_snapshot());

    -- The last complete, successful run left its horizon: rows written before it were
    -- in sync then and, unchanged since (same row version, same basis), still are.
    select ru.horizon, ru.basis into v_prev, v_prev_basis
      from user_sync.runs ru where ru.horizon is not null order by ru.id desc limit 1;
    if v_prev is not null and v_prev_basis = v_basis and v_prev <= v_horizon then
      -- age(xmin) <= v_age  <=>  the row version was written at or after v_prev.
      v_age := pg_current_xact_id()::text::bigint - v_prev::text::bigint;
      if v_age > 1000000000 then
        v_prev := null; -- too long ago for 32-bit transaction ids: look at everything
      end if;
    else
      v_prev := null;
    end if;

    if v_prev is null then
      -- One pass over both tables finds what to do: the ids of missing, drifted and
      -- orphaned profiles (empty when all is in sync), and how many rows each side has.
      execute format($q$
        select count(x.id), count(x.profile_id),
               coalesce(array_agg(x.id) filter (where x.missing), '{}'),
               coalesce(array_agg(x.id) filter (where x.drifted), '{}'),
               coalesce(array_agg(x.profile_id) filter (where x.orphaned), '{}')
          from (%s) x$q$, v_diff_sql)
        into v_auth_users, v_profiles, v_missing, v_drifted, v_orphaned;
    else
      -- The same, deriving profiles only for rows written since the last horizon (and
      -- for auth users without created_at, whose derived created_at is now()): one
      -- pass over ids and row versions, then the field rules for the few.
      select count(a.id), count(p.id),
             coalesce(array_agg(a.id) filter (where p.id is null), '{}'),
             coalesce(array_agg(a.id) filter (where a.id is not null and p.id is not null and (a.recent or p.recent)), '{}'),
             coalesce(array_agg(p.id) filter (where a.id is null), '{}')
        into v_auth_users, v_profiles, v_missing, v_recent, v_orphaned
        from (select au.id, age(au.xmin) <= v_age or au.created_at is null as recent from auth.users au) a
        full join (select u.id, age(u.xmin) <= v_age as recent from public.users u) p on p.id = a.id;
      v_drifted := '{}';
      if cardinality(v_recent) > greatest(v_bulk, v_auth_users / 4) then
        -- Most rows are new (e.g. right after a first sync): one pass is cheaper.
        execute format($q$select coalesce(array_agg(x.id) filter (where x.drifted), '{}') from (%s) x$q$, v_diff_sql)
          into v_drifted;
      elsif cardinality(v_recent) > 0 then
        execute format($q$
          select coalesce(array_agg(x.id), '{}') from (%s) x
          where x.id = any($1) and x.profile_id = any($1) and x.drifted$q$, v_diff_sql)
          into v_drifted using v_recent;
      end if;
    end if;

    if p_dry_run then
      v_inserted := cardinality(v_missing);
      v_updated := cardinality(v_drifted);
      v_deleted := cardinality(v_orphaned);
    elsif cardinality(v_missing) + cardinality(v_drifted) + cardinality(v_orphaned) > 0 then
      begin
        -- Each step re-reads the users it works on (their state may have moved since
        -- the pass above), by id: index probes on both tables, never a nested loop.
        v_sync_ts := clock_timestamp();
        -- Missing profiles. A profile inserted meanwhile by the trigger wins.
        if cardinality(v_missing) > v_bulk then
          -- Many (a first sync): one pass over auth.users beats a probe per id.
          execute format($q$
            insert into public.users (
              id, email, phone, name, avatar_url, role, provider, providers, is_anonymous,
              email_confirmed_at, last_sign_in_at, created_at, deleted_at, updated_at, synced_at
            )
            select
              pd.id, pd.email, pd.phone, pd.name, pd.avatar_url, pd.role, pd.provider, pd.providers, pd.is_anonymous,
              pd.email_confirmed_at, pd.last_sign_in_at, pd.created_at, pd.deleted_at, now(), $1
            from (%s) pd
            where pd.id is not null and pd.missing
            on conflict (id) do nothing$q$, v_diff_sql)
            using v_sync_ts;
          get diagnostics v_inserted = row_count;
        elsif cardinality(v_missing) > 0 then
          execute format($q$
            insert into public.users (
              id, email, phone, name, avatar_url, role, provider, providers, is_anonymous,
              email_confirmed_at, last_sign_in_at, created_at, deleted_at, updated_at, synced_at
            )
            select
              d.id, d.email, d.phone, d.name, d.avatar_url, d.role, d.provider, d.providers, d.is_anonymous,
              d.email_confirmed_at, d.last_sign_in_at, d.created_at, d.deleted_at, now(), $1
            from (%s) d
            where d.id = any($2)
            on conflict (id) do nothing$q$, v_expected_sql)
            using v_sync_ts, v_missing;
          get diagnostics v_inserted = row_count;
        end if;

        -- Drifted profiles; rows changed since they were read are skipped (xmin).
        for v_pass in 1..case when cardinality(v_drifted) > 0 then 3 else 0 end loop
          v_sync_ts := clock_timestamp();
          -- $1: the drifted ids, $2: most rows drifted (one pass), $3: the sync stamp.
          execute format($q$
          with todo as materialized (
            select x.* from (%s) x
            where x.drifted
              and ($2 -- most rows: one pass
                   or (x.id = any($1) and x.profile_id = any($1)))
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
              synced_at = $3
            from todo t
            where ($2 or u.id = any($1))
              and u.id = t.id and u.xmin = t.profile_xmin
            returning 1
          )
          select (select count(*) from todo), (select count(*) from done)$q$, v_diff_sql)
          into v_todo, v_n
          using v_drifted, cardinality(v_drifted) > greatest(v_bulk, v_auth_users / 4), v_sync_ts;
          v_updated := v_updated + v_n;
          v_complete := v_n = v_todo;
          exit when v_complete;
        end loop;

        -- Orphans: profiles whose auth user is gone (only possible when the
        -- foreign key was bypassed, e.g. by replication or a restore).
        if cardinality(v_orphaned) > 0 then
          delete from public.users u
          where u.id = any(v_orphaned)
            and not exists (select 1 from auth.users au where au.id = any(v_orphaned) and au.id = u.id);
          get diagnostics v_deleted = row_count;
        end if;
        v_profiles := v_profiles + v_inserted - v_deleted;
      exception when others then
        -- The set-based pass is rolled back as a whole; sync each affected user alone.
        get stacked diagnostics v_state = returned_sqlstate, v_message = message_text;
        raise warning 'user_sync.reconcile: set-based pass failed (%: %); syncing users one by one', v_state, v_message;
        v_inserted := 0; v_updated := 0; v_deleted := 0;
        for v_user_id in execute format($q$
          select pd.id from (%s) pd where pd.id is not null and (pd.missing or pd.drifted)
          union all
          select u.id from public.users u where not exists (select 1 from auth.users au where au.id = u.id)$q$, v_diff_sql)
        loop
          begin
            case user_sync.sync_user(v_user_id)
              when 'inserted' then v_inserted := v_inserted + 1;
              when 'updated' then v_updated := v_updated + 1;
              when 'deleted' then v_deleted := v_deleted + 1;
              else null;
            end case;
          exception when others then
            get stacked diagnostics v_state = returned_sqlstate, v_message = message_text;
            perform user_sync.record_error(v_user_id, 'reconcile', v_state, v_message, null, v_run_id);
            v_errors := v_errors + 1;
          end;
        end loop;
        select count(*) into v_auth_users from auth.users;
        select count(*) into v_profiles from public.users;
        v_complete := v_errors = 0;
      end;
    end if;

    if not p_dry_run then
      -- Open errors of users that are now in sync (or gone) are resolved; those
      -- users are looked up by id.
      select coalesce(array_agg(distinct e.user_id) filter (where e.user_id is not null), '{}'), count(*) > 0
        into v_open_errors, v_any
        from user_sync.errors e
        where e.resolved_at is null and e.run_id is distinct from v_run_id;
      if v_any then
        execute format($q$
          update user_sync.errors e set resolved_at = now()
          where e.resolved_at is null
            and e.run_id is distinct from $2
            and (e.user_id is null or e.user_id = any($1))
            and not exists (
              select 1 from (%s) x
              where x.id = any($1) and x.id = e.user_id and (x.missing or x.drifted)
            )$q$, v_diff_sql)
          using v_open_errors, v_run_id;
      end if;
    end if;

    v_status := case when v_errors > 0 then 'errors' else 'ok' end;
  exception when others then
    get stacked diagnostics v_state = returned_sqlstate, v_message = message_text;
    v_status := 'failed';
    v_inserted := 0; v_updated := 0; v_deleted := 0;
    v_errors := v_errors + 1;
    raise warning 'user_sync.reconcile failed (%: %)', v_state, v_message;
  end;

  update user_sync.runs set
    status = v_status,
    finished_at = clock_timestamp(),
    duration_ms = (extract(epoch from clock_timestamp() - v_started) * 1000)::integer,
    auth_users = v_auth_users,
    profiles = v_profiles,
    inserted = v_inserted,
    updated = v_updated,
    deleted = v_deleted,
    unchanged = greatest(coalesce(v_auth_users, 0) - v_inserted - v_updated, 0),
    errors = v_errors,
    error = case when v_status = 'failed' then format('%s: %s', v_state, v_message) end,
    horizon = case when not p_dry_run and v_status = 'ok' and v_complete then v_horizon end,
    basis = v_basis
  where id = v_run_id;

  return (
    select jsonb_build_object(
      'run_id', ru.id, 'source', ru.source, 'dry_run', ru.dry_run, 'skipped', false, 'status', ru.status,
      'auth_users', ru.auth_users, 'profiles', ru.profiles,
      'inserted', ru.inserted, 'updated', ru.updated, 'deleted', ru.deleted, 'unchanged', ru.unchanged,
      'errors', ru.errors, 'error', ru.error, 'duration_ms', ru.duration_ms)
    from user_sync.runs ru where ru.id = v_run_id
  );
end
$$;
comment on function user_sync.reconcile(boolean, text) is
  'Brings public.users in line with auth.users (insert missing, update drifted, remove orphans), set-based. Returns the run report; {"skipped": true} when another run is in progress.';
revoke execute on function user_sync.reconcile(boolean, text) from public, anon, authenticated;
grant execute on function user_sync.reconcile(boolean, text) to service_role;

