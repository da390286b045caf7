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
