-- -----------------------------------------------------------------------------
-- user_sync.status: counts for dashboards and the sync-all GET endpoint. heal: the
-- unfinished reconcile pass, if any (examined so far, total expected, users per
-- second since it started, seconds left at that rate).
--
-- The counts cost what reconcile's incremental comparison costs, not a derivation of
-- every profile: once a reconcile pass has finished without errors (under the same
-- rules, config and roles: reconcile_basis()), every row version older than its
-- horizon was in sync then, so the field rules run only for the few candidates (rows
-- written since). Missing and orphaned profiles need both id sets compared. One scan of
-- each table first compares them by their size and a fingerprint (the XOR of a 64-bit
-- hash of every id, seeded anew by each call); when both agree the sets are equal (two
-- different sets agree with a chance of 1 in 2^64), and nothing is missing or orphaned.
-- When they differ, the ids where differences come from (rows written since the last
-- pass, the deletion log, open errors) are looked up by key: if those missing or orphaned
-- account for the whole difference (in number and fingerprint), they are it. Only
-- otherwise are the ids joined (at 10M users the join alone takes about 12 s; the two
-- scans about 4 s). Without a finished pass (a fresh install, changed rules) every
-- profile is derived.
-- user_sync.heal_progress: status()'s heal alone, without the counts.
-- -----------------------------------------------------------------------------

-- The unfinished reconcile pass, apart from status()'s counts: reading it costs a row of
-- user_sync.reconcile_progress, not a scan of every user (about 4 s at 10M, more where
-- ids differ), so that a progress bar or a monitor can ask every second. Null when no pass is
-- under way.
create or replace function user_sync.heal_progress() returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'examined', h.examined, 'total', h.total, 'rate', h.rate,
    'eta_seconds', case when h.rate > 0 and h.remaining is not null
                        then ceil(h.remaining / h.rate)::bigint end,
    'started_at', h.started_at)
  from (
    select p.examined, p.total, p.started_at, user_sync.reconcile_remaining(p) as remaining,
           round(p.examined / greatest(extract(epoch from clock_timestamp() - p.started_at), 0.001), 1) as rate
    from user_sync.reconcile_progress p
    where not p.dry_run and p.finished_at is null
  ) h;
$$;
comment on function user_sync.heal_progress() is
  'The unfinished reconcile pass: {examined, total, rate, eta_seconds, started_at}, or null when none is under way. Cheap at any size (status().heal, without the counts).';
revoke execute on function user_sync.heal_progress() from public, anon, authenticated;
grant execute on function user_sync.heal_progress() to service_role;

create or replace function user_sync.status() returns jsonb
language plpgsql
stable
security definer
set search_path = ''
set jit = off
as $$
declare
  v_counts jsonb;
  v_since xid8;
  v_skip xid[];
  v_age bigint;
  v_candidates uuid[];
  v_suspects uuid[];
  v_limit bigint;
  v_auth_users bigint;
  v_profiles bigint;
  v_auth_fingerprint bigint;
  v_profiles_fingerprint bigint;
  v_missing bigint;
  v_orphaned bigint;
  v_differing_fingerprint bigint;
  v_seed bigint := pg_catalog.uuid_hash_extended(pg_catalog.gen_random_uuid(), 0);
  v_drifted bigint;
begin
  -- The horizon reconcile would start from (the same choice: reconcile_horizon).
  select h.since, h.skip_xids into v_since, v_skip from user_sync.reconcile_horizon(user_sync.reconcile_basis()) h;
  v_age := pg_current_xact_id()::text::bigint - v_since::text::bigint;

  if v_since is not null then
    -- age(xmin) <= v_age  <=>  the row version was written at or after v_since.
    -- Each id set's size and fingerprint; the candidates for drift: ids written since.
    select a.n, p.n, a.fingerprint, p.fingerprint, a.recent || p.recent
      into v_auth_users, v_profiles, v_auth_fingerprint, v_profiles_fingerprint, v_candidates
      from (select count(*) as n, coalesce(bit_xor(pg_catalog.uuid_hash_extended(au.id, v_seed)), 0) as fingerprint,
                   coalesce(array_agg(au.id) filter (where age(au.xmin) <= v_age), '{}') as recent
            from auth.users au) a
      cross join (select count(*) as n, coalesce(bit_xor(pg_catalog.uuid_hash_extended(u.id, v_seed)), 0) as fingerprint,
                         coalesce(array_agg(u.id) filter (where age(u.xmin) <= v_age and not u.xmin = any(v_skip)), '{}') as recent
                  from public.users u) p;
    v_limit := greatest(5000, v_auth_users / 4);
    if v_auth_users = v_profiles and v_auth_fingerprint = v_profiles_fingerprint then
      v_counts := jsonb_build_object('auth_users', v_auth_users, 'profiles', v_profiles, 'missing', 0, 'orphaned', 0);
    else
      -- The ids that differ, looked for where they come from: rows written since the last
      -- pass, profiles deleted since (the deletion log), users with open errors; each
      -- looked up by primary key on both sides. Those found missing or orphaned are the
      -- whole difference when they account for it in number and in fingerprint (the
      -- fingerprints of both sets XOR to the fingerprint of the ids in one set only).
      v_suspects := v_candidates
        || array(select d.user_id from user_sync.deleted_profiles d limit v_limit + 1)
        || array(select e.user_id from user_sync.errors e where e.resolved_at is null and e.user_id is not null limit v_limit + 1);
      if cardinality(v_suspects) <= v_limit then
        select count(*) filter (where x.in_auth and not x.in_profiles),
               count(*) filter (where x.in_profiles and not x.in_auth),
               coalesce(bit_xor(pg_catalog.uuid_hash_extended(x.id, v_seed)) filter (where x.in_auth <> x.in_profiles), 0)
          into v_missing, v_orphaned, v_differing_fingerprint
          from (select s.id,
                       exists (select 1 from auth.users au where au.id = s.id) as in_auth,
                       exists (select 1 from public.users u where u.id = s.id) as in_profiles
                from (select distinct t.id from unnest(v_suspects) as t (id)) s) x;
        if v_auth_users - v_profiles = v_missing - v_orphaned
           and (v_auth_fingerprint # v_profiles_fingerprint) = v_differing_fingerprint then
          v_counts := jsonb_build_object('auth_users', v_auth_users, 'profiles', v_profiles,
            'missing', v_missing, 'orphaned', v_orphaned);
        end if;
      end if;
      if v_counts is null then
        -- Not accounted for (an auth user deleted behind the foreign key's back, too many
        -- suspects): which ids are missing and orphaned takes the join of both sets. (The
        -- candidates for drift are the scans' already.)
        select jsonb_build_object(
                 'auth_users', count(a.id), 'profiles', count(p.id),
                 'missing', count(*) filter (where p.id is null), 'orphaned', count(*) filter (where a.id is null))
          into v_counts
          from auth.users a
          full join public.users p on p.id = a.id;
      end if;
    end if;
    if cardinality(v_candidates) <= v_limit then
      execute format($q$select count(*) from (%s) x where x.id = any($1) and x.profile_id = any($1) and x.drifted$q$,
          user_sync.profile_diff_sql())
        into v_drifted using v_candidates;
      v_counts := v_counts || jsonb_build_object('drifted', v_drifted);
    else
      v_counts := null; -- most rows changed since: one full pass is cheaper
    end if;
  end if;

  if v_counts is null then
    execute format($q$
      select jsonb_build_object(
        'auth_users', count(x.id), 'profiles', count(x.profile_id),
        'missing', count(*) filter (where x.missing), 'orphaned', count(*) filter (where x.orphaned),
        'drifted', count(*) filter (where x.drifted))
      from (%s) x$q$, user_sync.profile_diff_sql())
      into v_counts;
  end if;
  return v_counts || jsonb_build_object(
    'open_errors', (select count(*) from user_sync.errors e where e.resolved_at is null),
    'health', user_sync.health(),
    'version', user_sync.version(),
    'heal', user_sync.heal_progress(),
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
