-- -----------------------------------------------------------------------------
-- User Sync 0.5.0: the release marker (CHANGELOG.md "0.5.0").
-- -----------------------------------------------------------------------------
create or replace function user_sync.version() returns text
language sql
immutable
set search_path = ''
as $$
  select '0.5.0'::text;
$$;
comment on function user_sync.version() is 'The installed release of User Sync for Supabase (see CHANGELOG.md).';
revoke execute on function user_sync.version() from public, anon, authenticated;
grant execute on function user_sync.version() to service_role;
